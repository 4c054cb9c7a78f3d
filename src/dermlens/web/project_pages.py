"""The custom-vision project pages: sign in, projects, tags and images, training, iterations, review.

Every page is drawn on the server from the project core (``request.app.state.workspace``) and every
form posts to a route here, so the whole workflow runs without JavaScript. ``static/projects.js``
adds upload progress, live training progress, the threshold slider, quick test, export and one-click
review through the JSON API (``/api/v1/projects``), which accepts the same admin cookie.

The admin token is kept in an HttpOnly, SameSite=Strict cookie after the sign-in form, so another site
cannot make a browser send it; a post the browser says comes from another site (``Sec-Fetch-Site``,
``Origin``) is refused as well.
"""

from __future__ import annotations

import io
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlsplit

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from dermlens.api.auth import ADMIN_COOKIE, is_admin
from dermlens.api.errors import ClientError
from dermlens.projects.errors import Conflict, NotFound, ProjectError, Unauthorized
from dermlens.projects.iterations import MIN_IMAGES_PER_TAG
from dermlens.projects.schema import IterationStatus
from dermlens.web.pages import _page, render_error

router = APIRouter(prefix="/projects", include_in_schema=False)

PAGE_SIZE = 96
THUMB_SIDE = 192
COOKIE_SECONDS = 12 * 3600
FILTERS = ("all", "tagged", "untagged", "suggested")
BULK_DONE = {"tag": "tagged", "untag": "untagged", "delete": "deleted", "accept": "tagged as suggested"}


# access ---------------------------------------------------------------------------------------------
def _safe_next(target: str | None) -> str:
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


def _refused(request: Request) -> Response | None:
    """None when the request may go on; else the sign-in page (or 403 for a post from another site)."""
    if request.method == "POST" and _from_elsewhere(request):
        return render_error(request, 403, "forbidden", "This form was sent from another site; open dermlens "
                            "itself and send it again.")
    if is_admin(request):
        return None
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":  # a form's address is no page to come back to (and there is no referrer)
        target = "/projects"
    return RedirectResponse(f"/projects/login?next={quote(_safe_next(target), safe='')}", 303)


def _status(error: ProjectError) -> int:
    """The status the API gives the same refusal (`dermlens.api.errors.install_project_error_handler`)."""
    return {NotFound: 404, Conflict: 409, Unauthorized: 401}.get(type(error), 422)


def _grid_url(project_id: int, which: str = "all", page: int = 1, **notice: Any) -> str:
    """The project page showing ``which`` images at ``page``, with a notice of what was just done."""
    query = {**({"filter": which} if which != "all" else {}), **({"page": page} if page > 1 else {}), **notice}
    return f"/projects/{project_id}" + (f"?{urlencode(query)}" if query else "") + "#images"


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/projects") -> HTMLResponse:
    return _page(request, "project_login.html", {"next": _safe_next(next)})


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, token: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/projects") -> Response:
    from dermlens.projects.keys import secret_matches

    token = token.strip()
    if not secret_matches(token, request.app.state.admin_token_hash):
        return _page(request, "project_login.html", {"next": _safe_next(next), "error": (
            "That is not the admin token. It is DERMLENS_ADMIN_TOKEN, or the file admin-token in the data "
            "directory when that is not set.")}, 401)
    response = RedirectResponse(_safe_next(next), 303)
    response.set_cookie(ADMIN_COOKIE, token, max_age=COOKIE_SECONDS, path="/", httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response


@router.post("/logout")
def logout(request: Request) -> RedirectResponse:
    response = RedirectResponse("/projects/login", 303)
    response.delete_cookie(ADMIN_COOKIE, path="/", httponly=True, samesite="strict")
    return response


# projects -------------------------------------------------------------------------------------------
def _project_rows(workspace) -> list[dict[str, Any]]:
    rows = []
    for project in workspace.store.projects():
        iterations = workspace.iterations.list(project.id)
        published = next((i.number for i in iterations if i.id == project.published_iteration_id), None)
        rows.append({"project": project, "images": workspace.store.images(project.id, "all", limit=1)[1],
                     "tags": len(workspace.store.tags(project.id)), "iterations": len(iterations),
                     "published": published})
    return rows


def _list_page(request: Request, status: int = 200, **extra: Any) -> HTMLResponse:
    return _page(request, "project_list.html", {"rows": _project_rows(request.app.state.workspace), **extra},
                 status)


@router.get("", response_class=HTMLResponse)
def project_list(request: Request) -> Response:
    return _refused(request) or _list_page(request)


@router.post("", response_class=HTMLResponse)
def create_project(request: Request, name: Annotated[str, Form()] = "", kind: Annotated[str, Form()] = "multiclass",
                   description: Annotated[str, Form()] = "") -> Response:
    if refused := _refused(request):
        return refused
    try:
        project, key = request.app.state.workspace.store.create_project(name, kind=kind, description=description)
    except ProjectError as error:
        return _list_page(request, _status(error), error=str(error), form={"name": name, "kind": kind,
                                                                           "description": description})
    return _settings_page(request, project.id, new_key=key, created=True)


@router.post("/{project_id}/delete")
def delete_project(request: Request, project_id: int) -> Response:
    if refused := _refused(request):
        return refused
    request.app.state.workspace.store.delete_project(project_id)
    return RedirectResponse("/projects", 303)


def _project_context(request: Request, project_id: int, active: str) -> dict[str, Any]:
    workspace = request.app.state.workspace
    project = workspace.store.project(project_id)
    counts = workspace.store.tag_counts(project_id)
    tags = workspace.store.tags(project_id)
    published = None
    if project.published_iteration_id is not None:
        published = workspace.iterations.by_id(project.published_iteration_id).number
    return {"project": project, "tags": tags, "counts": counts, "tag_names": {t.id: t.name for t in tags},
            "active": active, "published_number": published}


# one project: tags, images, training ----------------------------------------------------------------
def _project_page(request: Request, project_id: int, which: str = "all", page: int = 1, status: int = 200,
                  **extra: Any) -> HTMLResponse:
    workspace = request.app.state.workspace
    context = _project_context(request, project_id, "images")
    page = max(page, 1)
    rows, total = workspace.store.images(project_id, which, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    iterations = workspace.iterations.list(project_id)
    running = [i for i in iterations if i.status in (IterationStatus.queued.value, IterationStatus.running.value)]
    counts = context["counts"]
    thin = [t for t in context["tags"] if counts.get(t.id, 0) < MIN_IMAGES_PER_TAG]
    changed = request.query_params.get("changed", "")
    context.update({
        "rows": rows, "total": total, "filter": which, "page": page, "pages": max(1, -(-total // PAGE_SIZE)),
        "filters": FILTERS, "iterations": list(reversed(iterations)), "training": running[-1] if running else None,
        "thin": thin, "min_images": MIN_IMAGES_PER_TAG, "changed": changed if changed.isdigit() else None,
        "did": BULK_DONE.get(request.query_params.get("did", "")),
        "published_id": context["project"].published_iteration_id})
    return _page(request, "project_detail.html", {**context, **extra}, status)


@router.get("/{project_id}", response_class=HTMLResponse)
def project_page(request: Request, project_id: int, filter: str = "all", page: int = Query(1, ge=1)) -> Response:
    return _refused(request) or _project_page(request, project_id, filter, page)


@router.post("/{project_id}/tags", response_class=HTMLResponse)
def add_tag(request: Request, project_id: int, name: Annotated[str, Form()] = "") -> Response:
    if refused := _refused(request):
        return refused
    try:
        request.app.state.workspace.store.add_tags(project_id, [name])
    except ProjectError as error:
        return _project_page(request, project_id, status=_status(error), tag_error=str(error))
    return RedirectResponse(f"/projects/{project_id}#tags", 303)


@router.post("/{project_id}/tags/{tag_id}/rename", response_class=HTMLResponse)
def rename_tag(request: Request, project_id: int, tag_id: int, name: Annotated[str, Form()] = "") -> Response:
    if refused := _refused(request):
        return refused
    try:
        request.app.state.workspace.store.rename_tag(project_id, tag_id, name)
    except ProjectError as error:
        return _project_page(request, project_id, status=_status(error), tag_error=str(error))
    return RedirectResponse(f"/projects/{project_id}#tags", 303)


@router.post("/{project_id}/tags/{tag_id}/delete")
def delete_tag(request: Request, project_id: int, tag_id: int) -> Response:
    if refused := _refused(request):
        return refused
    request.app.state.workspace.store.delete_tag(project_id, tag_id)
    return RedirectResponse(f"/projects/{project_id}#tags", 303)


@router.post("/{project_id}/images", response_class=HTMLResponse)
async def upload_images(request: Request, project_id: int) -> Response:
    """The plain upload form: the same reading and import as ``POST /api/v1/projects/{id}/images``."""
    from dermlens.api.routes.project_images import form_entries
    from dermlens.projects.imports import import_entries

    if refused := _refused(request):
        return refused
    workspace = request.app.state.workspace
    workspace.store.project(project_id)
    try:
        entries, tag_ids = await form_entries(request)  # first: it reads the form with a high file limit
        result = await run_in_threadpool(import_entries, workspace.store, project_id, entries, tag_ids=tag_ids,
                                         source="upload", labelled_by="admin",
                                         max_pixels=request.app.state.settings.max_pixels)
    except ClientError as error:
        return _project_page(request, project_id, status=error.status, upload_error=error.message)
    except ProjectError as error:
        return _project_page(request, project_id, status=_status(error), upload_error=str(error))
    return _project_page(request, project_id, uploaded=result)


@router.post("/{project_id}/images/bulk", response_class=HTMLResponse)
def bulk_images(request: Request, project_id: int, action: Annotated[str, Form()] = "",
                image: Annotated[list[int], Form()] = [], tag: Annotated[str, Form()] = "",  # noqa: B006
                filter: Annotated[str, Form()] = "all", page: Annotated[int, Form()] = 1) -> Response:
    """Tag, untag, delete or accept the suggestions of the images ticked in the grid."""
    if refused := _refused(request):
        return refused
    store = request.app.state.workspace.store
    tag_id = int(tag) if tag.strip().isdigit() else None
    problem = None
    if not image:
        problem = "Tick at least one image first."
    elif action == "tag" and tag_id is None:
        problem = "Choose the tag to give the selected images."
    elif action not in BULK_DONE:
        problem = "Choose what to do with the selected images."
    status, changed = 422, 0
    try:
        if problem is None:
            changed = _apply_bulk(store, project_id, action, image, tag_id)
    except ProjectError as error:
        problem, status = str(error), _status(error)
    if problem is not None:
        return _project_page(request, project_id, filter, page, status=status, bulk_error=problem)
    return RedirectResponse(_grid_url(project_id, filter, page, changed=changed, did=action), 303)


def _apply_bulk(store, project_id: int, action: str, image_ids: list[int], tag_id: int | None) -> int:
    if action == "delete":
        return store.delete_images(project_id, image_ids)
    if action == "tag":
        return store.set_labels(project_id, image_ids, add=[tag_id], labelled_by="admin")
    if action == "untag":  # no tag chosen: take every tag off the selected images
        remove = [tag_id] if tag_id is not None else [t.id for t in store.tags(project_id)]
        return store.set_labels(project_id, image_ids, remove=remove, labelled_by="admin")
    rows, _ = store.images(project_id, "suggested", limit=100_000)
    by_name = {t.name: t.id for t in store.tags(project_id)}
    chosen: dict[int, list[int]] = {}
    wanted = set(image_ids)
    for row in rows:
        if row.image.id in wanted and row.suggestion and row.suggestion.top_tag in by_name:
            chosen.setdefault(by_name[row.suggestion.top_tag], []).append(row.image.id)
    return sum(store.set_labels(project_id, ids, add=[t], labelled_by="admin") for t, ids in chosen.items())


@router.get("/{project_id}/images/{image_id}/thumb")
def thumbnail(request: Request, project_id: int, image_id: int) -> Response:
    """A small JPEG of a stored image for the grid (a stored image never changes, so it may be cached)."""
    if refused := _refused(request):
        return refused

    def shrink(data: bytes) -> bytes:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as picture:
            small = picture.convert("RGB")
            small.thumbnail((THUMB_SIDE, THUMB_SIDE))
            out = io.BytesIO()
            small.save(out, format="JPEG", quality=82)
            return out.getvalue()

    data = request.app.state.workspace.store.image_bytes(project_id, image_id)
    return Response(shrink(data), media_type="image/jpeg", headers={"cache-control": "private, max-age=86400"})


@router.post("/{project_id}/train", response_class=HTMLResponse)
def train(request: Request, project_id: int, kind: Annotated[str, Form()] = "quick",
          budget_minutes: Annotated[float, Form()] = 10.0) -> Response:
    """Queue an iteration and start a worker; without JavaScript its page follows the progress."""
    from dermlens.projects.jobs import start_worker

    if refused := _refused(request):
        return refused
    workspace = request.app.state.workspace
    try:
        iteration = workspace.iterations.queue(project_id, kind, budget_minutes=budget_minutes)
    except ProjectError as error:
        return _project_page(request, project_id, status=_status(error), train_error=str(error),
                             train_form={"kind": kind, "budget_minutes": budget_minutes})
    if request.app.state.settings.start_workers:
        start_worker(workspace.data_dir, workspace.database_url)
    return RedirectResponse(f"/projects/{project_id}/iterations/{iteration.number}", 303)


# iterations -----------------------------------------------------------------------------------------
def _metrics(iteration, threshold: float) -> dict | None:
    from dermlens.projects.metrics import metrics_at

    if iteration.status != IterationStatus.completed.value or not iteration.metrics:
        return None
    return metrics_at(iteration.metrics, threshold, multiclass=iteration.config.get("project_kind") == "multiclass")


def _export_formats() -> list[dict[str, Any]]:
    try:
        from dermlens.export.formats import available_formats
    except ImportError:  # an older core without the extra formats: ONNX is what every iteration has
        return [{"format": "onnx", "reason": None}]
    return [{"format": f.value, "reason": reason} for f, reason in available_formats().items()]


def _iteration_page(request: Request, project_id: int, number: int, threshold: float = 0.5, status: int = 200,
                    **extra: Any) -> HTMLResponse:
    workspace = request.app.state.workspace
    context = _project_context(request, project_id, "iterations")
    iteration = workspace.iterations.get(project_id, number)
    metrics = _metrics(iteration, threshold)
    others = [i.number for i in workspace.iterations.list(project_id)
              if i.number != number and i.status == IterationStatus.completed.value]
    project = context["project"]
    context.update({"iteration": iteration, "metrics": metrics, "threshold": threshold, "others": others,
                    "published": project.published_iteration_id == iteration.id,
                    "formats": _export_formats() if metrics is not None else [],
                    "following": iteration.status in (IterationStatus.queued.value, IterationStatus.running.value)})
    return _page(request, "project_iteration.html", {**context, **extra}, status)


@router.get("/{project_id}/iterations/{number}", response_class=HTMLResponse)
def iteration_page(request: Request, project_id: int, number: int,
                   threshold: float = Query(0.5, ge=0.0, le=1.0)) -> Response:
    return _refused(request) or _iteration_page(request, project_id, number, threshold)


@router.post("/{project_id}/iterations/{number}/delete")
def delete_iteration(request: Request, project_id: int, number: int) -> Response:
    if refused := _refused(request):
        return refused
    try:
        request.app.state.workspace.iterations.delete(project_id, number)
    except Conflict as error:
        return _iteration_page(request, project_id, number, status=409, iteration_error=str(error))
    return RedirectResponse(f"/projects/{project_id}#iterations", 303)


@router.post("/{project_id}/iterations/{number}/quick-test", response_class=HTMLResponse)
async def quick_test(request: Request, project_id: int, number: int) -> Response:
    from dermlens.api.routes.project_iterations import stored_upload

    if refused := _refused(request):
        return refused
    publishing = request.app.state.workspace.publishing
    try:
        stored = await stored_upload(request)
        answer = await run_in_threadpool(publishing.quick_test, project_id, number, stored)
    except ClientError as error:
        return _iteration_page(request, project_id, number, status=error.status, quick_test_error=error.message)
    except ProjectError as error:
        return _iteration_page(request, project_id, number, status=_status(error), quick_test_error=str(error))
    return _iteration_page(request, project_id, number, quick_test=answer)


@router.post("/{project_id}/iterations/{number}/publish", response_class=HTMLResponse)
def publish(request: Request, project_id: int, number: int, name: Annotated[str, Form()] = "") -> Response:
    if refused := _refused(request):
        return refused
    try:
        request.app.state.workspace.publishing.publish(project_id, number, name)
    except ProjectError as error:
        return _iteration_page(request, project_id, number, status=_status(error), publish_error=str(error))
    return RedirectResponse(f"/projects/{project_id}/iterations/{number}#publish", 303)


@router.post("/{project_id}/unpublish")
def unpublish(request: Request, project_id: int, next: Annotated[str, Form()] = "") -> Response:
    if refused := _refused(request):
        return refused
    request.app.state.workspace.publishing.unpublish(project_id)
    back = next if next.startswith(f"/projects/{project_id}") else ""
    return RedirectResponse(_safe_next(back or f"/projects/{project_id}/settings"), 303)


@router.post("/{project_id}/iterations/{number}/export", response_class=HTMLResponse)
async def export(request: Request, project_id: int, number: int, format: Annotated[str, Form()] = "onnx") -> Response:
    from dermlens.projects.exporting import export_for_download

    if refused := _refused(request):
        return refused
    workspace = request.app.state.workspace
    try:
        result = await run_in_threadpool(export_for_download, workspace, project_id, number, format)
    except ProjectError as error:
        return _iteration_page(request, project_id, number, status=_status(error), export_error=str(error))
    download = (f"/api/v1/projects/{project_id}/iterations/{number}/exports/{result.format.value}"
                if result.produced else None)
    return _iteration_page(request, project_id, number, exported={
        "format": result.format.value, "produced": result.produced, "verified": result.verified,
        "agreement": result.agreement, "message": result.message, "download": download})


@router.get("/{project_id}/iterations/{number}/model", response_class=HTMLResponse)
def model_page(request: Request, project_id: int, number: int) -> Response:
    """The network's layers, output shapes and parameter counts (``GET .../summary`` in the API)."""
    from dermlens.export.summary import model_summary

    if refused := _refused(request):
        return refused
    workspace = request.app.state.workspace
    iteration = workspace.iterations.completed(project_id, number)
    summary = model_summary(workspace.publishing.model_path(iteration)).to_dict()
    context = _project_context(request, project_id, "iterations")
    return _page(request, "project_model.html", {**context, "iteration": iteration, "summary": summary})


@router.get("/{project_id}/compare", response_class=HTMLResponse)
def compare_page(request: Request, project_id: int, first: int, second: int,
                 threshold: float = Query(0.5, ge=0.0, le=1.0)) -> Response:
    from dermlens.projects.metrics import compare

    if refused := _refused(request):
        return refused
    iterations = request.app.state.workspace.iterations
    a, b = iterations.completed(project_id, first), iterations.completed(project_id, second)
    ma, mb = _metrics(a, threshold), _metrics(b, threshold)
    context = _project_context(request, project_id, "iterations")
    completed = [i.number for i in iterations.list(project_id) if i.status == IterationStatus.completed.value]
    return _page(request, "project_compare.html", {
        **context, "first": a, "second": b, "a": ma, "b": mb, "rows": compare(ma, mb), "threshold": threshold,
        "completed": completed})


# review and settings --------------------------------------------------------------------------------
def _review_page(request: Request, project_id: int, status: int = 200, **extra: Any) -> HTMLResponse:
    context = _project_context(request, project_id, "review")
    context["predictions"] = request.app.state.workspace.publishing.review(project_id)
    return _page(request, "project_review.html", {**context, **extra}, status)


@router.get("/{project_id}/review", response_class=HTMLResponse)
def review_page(request: Request, project_id: int) -> Response:
    return _refused(request) or _review_page(request, project_id)


@router.post("/{project_id}/review/{prediction_id}/{verdict}", response_class=HTMLResponse)
def review_verdict(request: Request, project_id: int, prediction_id: int, verdict: str,
                   tag_id: Annotated[int | None, Form()] = None) -> Response:
    if refused := _refused(request):
        return refused
    publishing = request.app.state.workspace.publishing
    try:
        if verdict == "confirm":
            publishing.confirm(project_id, prediction_id, by="admin")
        elif verdict == "correct" and tag_id is not None:
            publishing.correct(project_id, prediction_id, tag_id, by="admin")
        else:
            return _review_page(request, project_id, 422, review_error="Choose the right tag, or confirm.")
    except ProjectError as error:
        return _review_page(request, project_id, _status(error), review_error=str(error))
    return RedirectResponse(f"/projects/{project_id}/review", 303)


def _settings_page(request: Request, project_id: int, status: int = 200, **extra: Any) -> HTMLResponse:
    context = _project_context(request, project_id, "settings")
    base = str(request.base_url).rstrip("/")
    return _page(request, "project_settings.html", {
        **context, "endpoint": f"{base}/api/v1/projects/{project_id}/predict", **extra}, status)


@router.get("/{project_id}/settings", response_class=HTMLResponse)
def settings_page(request: Request, project_id: int) -> Response:
    return _refused(request) or _settings_page(request, project_id)


@router.post("/{project_id}/key", response_class=HTMLResponse)
def new_key(request: Request, project_id: int) -> Response:
    if refused := _refused(request):
        return refused
    key = request.app.state.workspace.store.new_prediction_key(project_id)
    return _settings_page(request, project_id, new_key=key)


@router.post("/{project_id}/rename", response_class=HTMLResponse)
def rename_project(request: Request, project_id: int, name: Annotated[str, Form()] = "",
                   description: Annotated[str, Form()] = "") -> Response:
    if refused := _refused(request):
        return refused
    try:
        request.app.state.workspace.store.rename_project(project_id, name, description)
    except ProjectError as error:
        return _settings_page(request, project_id, _status(error), rename_error=str(error))
    return RedirectResponse(f"/projects/{project_id}/settings", 303)
