"""Request size limits and per-client rate limiting, as ASGI middleware.

Both answer before the application reads a request: an oversized body is refused from its
Content-Length (or as soon as the streamed bytes pass the limit), so a 2 GB upload never reaches
memory; a client over its rate gets 429 with ``Retry-After``.

The rate counters live in the worker's memory. They are not data anyone would miss (a restart only
forgets who sent what in the last minute), and with N workers behind a load balancer each worker
allows the limit on its own; put the limit in the load balancer for an exact global figure.
"""

from __future__ import annotations

import json
import math
import threading
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dermlens.api.errors import prefers_html

# the multipart envelope and the optional form fields around the image
FORM_OVERHEAD = 64 * 1024


class _TooLarge(Exception):
    pass


async def _send_error(scope: Scope, send: Send, status: int, code: str, message: str,
                      headers: list[tuple[bytes, bytes]] = ()) -> None:
    if prefers_html(scope["path"], dict(scope.get("headers", [])).get(b"accept", b"").decode("latin-1")):
        body = (f"<!doctype html><meta charset=utf-8><title>dermlens: {status}</title>"
                f"<p>{message}</p><p><a href=/>Back to dermlens</a></p>").encode()
        kind = b"text/html; charset=utf-8"
    else:
        body, kind = json.dumps({"error": code, "message": message}).encode(), b"application/json"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


def is_image_import(path: str) -> bool:
    """Uploads of project images (many files or a zip at once) have their own, larger limit."""
    return path.startswith(("/api/v1/projects/", "/projects/")) and path.rstrip("/").endswith("/images")


class BodySizeLimit:
    """Refuse request bodies larger than ``max_bytes`` (``import_max_bytes`` for project image imports)
    with 413."""

    def __init__(self, app: ASGIApp, max_bytes: int, import_max_bytes: int | None = None) -> None:
        self.app, self.max_bytes = app, max_bytes
        self.import_max_bytes = import_max_bytes or max_bytes

    @staticmethod
    def _message(limit: int) -> str:
        return (f"The upload is larger than the {limit / 2**20:.0f} MB limit; send a smaller "
                f"(or more compressed) file.")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.import_max_bytes if is_image_import(scope["path"]) else self.max_bytes
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit + FORM_OVERHEAD:
            return await _send_error(scope, send, 413, "file_too_large", self._message(limit))
        seen = 0
        exceeded = replaced = False

        async def counting_receive() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit + FORM_OVERHEAD:
                    exceeded = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            # the framework may turn the aborted read into its own error: answer 413 instead
            nonlocal replaced
            if not exceeded:
                return await send(message)
            if not replaced:
                replaced = True
                await _send_error(scope, send, 413, "file_too_large", self._message(limit))

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _TooLarge:
            if not replaced:
                await _send_error(scope, send, 413, "file_too_large", self._message(limit))


class RateLimit:
    """At most ``per_minute`` limited requests per client and minute (a sliding window of 60 s).

    Limited are the API (except health) and every form post; pages and static files are not, nor is
    project management, which needs the admin token (a project's prediction endpoint is limited).
    """

    def __init__(self, app: ASGIApp, per_minute: int) -> None:
        self.app, self.per_minute = app, per_minute
        self._hits: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def limited(self, scope: Scope) -> bool:
        path = scope["path"]
        if path == "/api/v1/health":
            return False
        if path.startswith(("/api/v1/projects", "/projects")):
            return path.endswith(("/predict", "/login"))
        return path.startswith("/api/") or scope["method"] == "POST"

    def retry_after(self, client: str, now: float) -> float:
        """0 when the request may go on (and is counted), else seconds until it may."""
        with self._lock:
            if len(self._hits) > 10_000:  # forget idle clients
                self._hits = {k: v for k, v in self._hits.items() if v and now - v[-1] < 60}
            recent = [t for t in self._hits.get(client, []) if now - t < 60]
            if len(recent) >= self.per_minute:
                self._hits[client] = recent
                return 60 - (now - recent[0])
            recent.append(now)
            self._hits[client] = recent
            return 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.per_minute <= 0 or not self.limited(scope):
            return await self.app(scope, receive, send)
        client = (scope.get("client") or ("unknown", 0))[0]
        wait = self.retry_after(client, time.monotonic())
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            return await _send_error(scope, send, 429, "rate_limited",
                                     f"Too many requests from this address; try again in {seconds} s.",
                                     [(b"retry-after", str(seconds).encode())])
        await self.app(scope, receive, send)


CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data: blob:; script-src 'self'; "
                           "style-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
                           "form-action 'self'")
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"permissions-policy", b"camera=(self), geolocation=(), microphone=()"),
    (b"cache-control", b"no-store"),
]


class SecurityHeaders:
    """CSP without inline script, no sniffing, no referrer, no framing, nothing cached (results are private).

    Static files keep their caching: only responses without a cache-control of their own get ``no-store``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name for name, _ in message.get("headers", [])}
                static = scope["path"].startswith("/static/")
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in present
                         and not (static and k == b"cache-control")]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)
