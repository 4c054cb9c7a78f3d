"""Who may do what: the admin token manages projects, a project's prediction key calls its endpoint.

The admin token comes from ``DERMLENS_ADMIN_TOKEN``; unset, one is made on first start and kept in
``<data dir>/admin-token`` (readable by its owner only), so every worker on the data directory shares
it. API clients send ``Authorization: Bearer <token>``; the pages keep it in an HttpOnly, SameSite=Strict
cookie after the sign-in form.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import Request

from dermlens.api.errors import ClientError
from dermlens.projects.keys import new_secret, secret_matches

ADMIN_COOKIE = "dermlens_admin"
TOKEN_FILE = "admin-token"


def admin_token(configured: str | None, data_dir: Path) -> str:
    """The configured token, else the one in the data directory (made now if there is none)."""
    if configured:
        return configured
    path = Path(data_dir) / TOKEN_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    token = new_secret()
    try:  # O_EXCL: of several workers starting at once, one writes and the others read its token
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(handle, "w") as out:
        out.write(token + "\n")
    return token


def presented_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.cookies.get(ADMIN_COOKIE)


def is_admin(request: Request) -> bool:
    return secret_matches(presented_token(request), request.app.state.admin_token_hash)


def require_admin(request: Request) -> None:
    """A FastAPI dependency: 401 unless the request carries the admin token."""
    if not is_admin(request):
        raise ClientError(401, "unauthorized", "Managing projects needs the admin token: send "
                          "'Authorization: Bearer <token>' (the token is DERMLENS_ADMIN_TOKEN, or the file "
                          "admin-token in the data directory).", {"WWW-Authenticate": "Bearer"})

