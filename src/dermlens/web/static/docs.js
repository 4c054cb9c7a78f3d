// Starts Swagger UI from files served by dermlens itself (no CDN, no inline script under the CSP).
window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
