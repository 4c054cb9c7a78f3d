"""Signing in to the project pages, and the checks every project page makes first.

The admin token is kept in an HttpOnly, SameSite=Strict cookie after the sign-in form, so another site
cannot make a browser send it; a post the browser says comes from another site (``Sec-Fetch-Site``,
``Origin``) is refused as well. The page routers check every request with `require_page_access` and
answer a refusal through the exception handler `answer_refusal`:

    router = APIRouter(prefix="/projects", include_in_schema=False, dependencies=[Depends(require_page_access)])
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from dermlens.api.auth import ADMIN_COOKIE, is_admin
from dermlens.web.pages import render_error, render_page

router = APIRouter(prefix="/projects", include_in_schema=False)
COOKIE_SECONDS = 12 * 3600


# access ---------------------------------------------------------------------------------------------
def safe_next(target: str | None) -> str:
    """Only a path of these pages: a sign-in link cannot send anyone to another site."""
    if not target or not target.startswith("/projects") or "//" in target or "\\" in target:
        return "/projects"
    return target


def _from_elsewhere(request: Request) -> bool:
    """Whether the browser says the request comes from another site. ``Sec-Fetch-Site`` first: with
    this site's no-referrer policy a browser sends ``Origin: null`` even for its own forms."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = request.headers.get("origin")
    return bool(origin) and origin != "null" and urlsplit(origin).netloc != request.headers.get("host")


def refused_page(request: Request) -> Response | None:
    """None when the request may go on; else the sign-in page (or 403 for a post from another site)."""
    if request.method == "POST" and _from_elsewhere(request):
        return render_error(request, 403, "forbidden", "This form was sent from another site; open dermlens "
                            "itself and send it again.")
    if is_admin(request):
        return None
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":  # a form's address is no page to come back to (and there is no referrer)
        target = "/projects"
    return RedirectResponse(f"/projects/login?next={quote(safe_next(target), safe='')}", 303)


class PageRefused(Exception):
    """A request a project page refuses; ``response`` is what it gets instead (from `refused_page`)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


async def require_page_access(request: Request) -> None:
    """The dependency of the project page routers: raise `PageRefused` unless the request may go on."""
    if (refused := refused_page(request)) is not None:
        raise PageRefused(refused)


def answer_refusal(request: Request, refused: PageRefused) -> Response:
    """The app's exception handler for `PageRefused` (registered in `dermlens.api.app.create_app`)."""
    return refused.response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/projects") -> HTMLResponse:
    return render_page(request, "project_login.html", {"next": safe_next(next)})


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, token: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/projects") -> Response:
    from dermlens.projects.keys import secret_matches

    token = token.strip()
    if not secret_matches(token, request.app.state.admin_token_hash):
        return render_page(request, "project_login.html", {"next": safe_next(next), "error": (
            "That is not the admin token. It is DERMLENS_ADMIN_TOKEN, or the file admin-token in the data "
            "directory when that is not set.")}, 401)
    response = RedirectResponse(safe_next(next), 303)
    response.set_cookie(ADMIN_COOKIE, token, max_age=COOKIE_SECONDS, path="/", httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response


@router.post("/logout")
def logout(request: Request) -> RedirectResponse:
    response = RedirectResponse("/projects/login", 303)
    response.delete_cookie(ADMIN_COOKIE, path="/", httponly=True, samesite="strict")
    return response
