"""Client errors a person can act on: a stable code, a plain message, the right 4xx status.

The API answers them as JSON (``{"error": code, "message": ...}``); the pages render the same message.
Anything unexpected becomes a 500 with a generic message and no traceback, logged without the request.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("dermlens.api")


class ClientError(Exception):
    """A request dermlens cannot serve as sent; ``message`` says what to change."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def prefers_html(path: str, accept: str) -> bool:
    """Whether an error should be a page (a browser asking for a page) rather than JSON (the API)."""
    return not path.startswith("/api/") and "text/html" in accept


def wants_html(request: Request) -> bool:
    return prefers_html(request.url.path, request.headers.get("accept", ""))


def _validation_message(error: RequestValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{where or 'request'}: {item.get('msg', 'invalid value')}")
    return "The request has invalid fields: " + "; ".join(parts)


def install_error_handlers(app: FastAPI, render_error) -> None:
    """``render_error(request, status, code, message)`` draws the HTML page for browser requests."""

    def respond(request: Request, status: int, code: str, message: str, headers=None):
        if wants_html(request):
            return render_error(request, status, code, message, headers)
        return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)

    install_project_error_handler(app, respond)

    @app.exception_handler(ClientError)
    async def client_error(request: Request, error: ClientError):
        return respond(request, error.status, error.code, error.message, error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError):
        return respond(request, 422, "invalid_request", _validation_message(error))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        message = {404: "There is nothing at this address.",
                   405: "This address does not accept that method."}.get(error.status_code, str(error.detail))
        return respond(request, error.status_code, code, message, getattr(error, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return respond(request, 500, "internal_error",
                       "Something went wrong on the server; the image was not kept. Please try again.")


def install_project_error_handler(app: FastAPI, respond_error) -> None:
    """Project store refusals (`dermlens.projects.errors`) with the status each kind names."""
    from dermlens.projects.errors import ProjectError

    @app.exception_handler(ProjectError)
    async def project_error(request: Request, error: ProjectError):
        return respond_error(request, error.status, error.code, str(error))
