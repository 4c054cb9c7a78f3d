"""The custom-vision project pages: the project list, one project (tags, images, upload, bulk tagging,
training) and its settings (prediction key, rename, delete).

Every page is drawn on the server from the project core (``request.app.state.workspace``) and every
form posts to a route here, so the whole workflow runs without JavaScript. ``static/projects.js``
adds upload progress, live training progress, the threshold slider, quick test, export and one-click
review through the JSON API (``/api/v1/projects``), which accepts the same admin cookie. Sign-in and
the access checks are in `dermlens.web.project_access`; iterations and review in
`dermlens.web.iteration_pages`.
"""

from __future__ import annotations

import io
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from dermlens.api.errors import ClientError
from dermlens.projects.errors import ProjectError
from dermlens.projects.iterations import MIN_IMAGES_PER_TAG
from dermlens.projects.schema import IterationStatus
from dermlens.web.pages import render_page
from dermlens.web.project_access import require_page_access

router = APIRouter(prefix="/projects", include_in_schema=False, dependencies=[Depends(require_page_access)])


PAGE_SIZE = 96
THUMB_SIDE = 192
FILTERS = ("all", "tagged", "untagged", "suggested")
BULK_DONE = {"tag": "tagged", "untag": "untagged", "delete": "deleted", "accept": "tagged as suggested"}


def grid_url(project_id: int, which: str = "all", page: int = 1, **notice: Any) -> str:
    """The project page showing ``which`` images at ``page``, with a notice of what was just done."""
    query = {**({"filter": which} if which != "all" else {}), **({"page": page} if page > 1 else {}), **notice}
    return f"/projects/{project_id}" + (f"?{urlencode(query)}" if query else "") + "#images"


# projects -------------------------------------------------------------------------------------------
def _list_page(request: Request, status: int = 200, **extra: Any) -> HTMLResponse:
    return render_page(request, "project_list.html", {"rows": request.app.state.workspace.store.overview(), **extra},
                       status)


@router.get("", response_class=HTMLResponse)
def project_list(request: Request) -> Response:
    return _list_page(request)


@router.post("", response_class=HTMLResponse)
def create_project(request: Request, name: Annotated[str, Form()] = "", kind: Annotated[str, Form()] = "multiclass",
                   description: Annotated[str, Form()] = "") -> Response:
    try:
        project, key = request.app.state.workspace.store.create_project(name, kind=kind, description=description)
    except ProjectError as error:
        return _list_page(request, error.status, error=str(error), form={"name": name, "kind": kind,
                                                                          "description": description})
    return _settings_page(request, project.id, new_key=key, created=True)


@router.post("/{project_id}/delete")
def delete_project(request: Request, project_id: int) -> Response:
    request.app.state.workspace.store.delete_project(project_id)
    return RedirectResponse("/projects", 303)


def project_context(request: Request, project_id: int, active: str, *, tags: bool = False,
                    published: bool = False) -> dict[str, Any]:
    """What every project page shows (the project, its tab), plus its ``tags`` and the number of its
    ``published`` iteration (``published_number``) for the pages that show them."""
    workspace = request.app.state.workspace
    project = workspace.store.project(project_id)
    context: dict[str, Any] = {"project": project, "active": active}
    if tags:
        context["tags"] = workspace.store.tags(project_id)
    if published:
        context["published_number"] = None if project.published_iteration_id is None else \
            workspace.iterations.by_id(project.published_iteration_id).number
    return context


# one project: tags, images, training ----------------------------------------------------------------
def _project_page(request: Request, project_id: int, which: str = "all", page: int = 1, status: int = 200,
                  **extra: Any) -> HTMLResponse:
    workspace = request.app.state.workspace
    context = project_context(request, project_id, "images", tags=True)
    tags = context["tags"]
    counts = workspace.store.tag_counts(project_id)
    page = max(page, 1)
    rows, total = workspace.store.images(project_id, which, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    iterations = workspace.iterations.list(project_id)
    running = [i for i in iterations if i.status in (IterationStatus.queued.value, IterationStatus.running.value)]
    thin = [t for t in tags if counts.get(t.id, 0) < MIN_IMAGES_PER_TAG]
    changed = request.query_params.get("changed", "")
    context.update({
        "counts": counts, "tag_names": {t.id: t.name for t in tags},
        "rows": rows, "total": total, "filter": which, "page": page, "pages": max(1, -(-total // PAGE_SIZE)),
        "filters": FILTERS, "iterations": list(reversed(iterations)), "training": running[-1] if running else None,
        "thin": thin, "min_images": MIN_IMAGES_PER_TAG, "changed": changed if changed.isdigit() else None,
        "did": BULK_DONE.get(request.query_params.get("did", "")),
        "published_id": context["project"].published_iteration_id})
    return render_page(request, "project_detail.html", {**context, **extra}, status)


@router.get("/{project_id}", response_class=HTMLResponse)
def project_page(request: Request, project_id: int, filter: str = "all", page: int = Query(1, ge=1)) -> Response:
    return _project_page(request, project_id, filter, page)


@router.post("/{project_id}/tags", response_class=HTMLResponse)
def add_tag(request: Request, project_id: int, name: Annotated[str, Form()] = "") -> Response:
    try:
        request.app.state.workspace.store.add_tags(project_id, [name])
    except ProjectError as error:
        return _project_page(request, project_id, status=error.status, tag_error=str(error))
    return RedirectResponse(f"/projects/{project_id}#tags", 303)


@router.post("/{project_id}/tags/{tag_id}/rename", response_class=HTMLResponse)
def rename_tag(request: Request, project_id: int, tag_id: int, name: Annotated[str, Form()] = "") -> Response:
    try:
        request.app.state.workspace.store.rename_tag(project_id, tag_id, name)
    except ProjectError as error:
        return _project_page(request, project_id, status=error.status, tag_error=str(error))
    return RedirectResponse(f"/projects/{project_id}#tags", 303)


@router.post("/{project_id}/tags/{tag_id}/delete")
def delete_tag(request: Request, project_id: int, tag_id: int) -> Response:
    request.app.state.workspace.store.delete_tag(project_id, tag_id)
    return RedirectResponse(f"/projects/{project_id}#tags", 303)


@router.post("/{project_id}/images", response_class=HTMLResponse)
async def upload_images(request: Request, project_id: int) -> Response:
    """The plain upload form: the same reading and import as ``POST /api/v1/projects/{id}/images``."""
    from dermlens.api.routes.project_images import import_upload

    request.app.state.workspace.store.project(project_id)  # an unknown project is the error page, not this one
    try:
        result = await import_upload(request, project_id)
    except ClientError as error:
        return _project_page(request, project_id, status=error.status, upload_error=error.message)
    except ProjectError as error:
        return _project_page(request, project_id, status=error.status, upload_error=str(error))
    return _project_page(request, project_id, uploaded=result)


@router.post("/{project_id}/images/bulk", response_class=HTMLResponse)
def bulk_images(request: Request, project_id: int, action: Annotated[str, Form()] = "",
                image: Annotated[list[int], Form()] = [], tag: Annotated[str, Form()] = "",  # noqa: B006
                filter: Annotated[str, Form()] = "all", page: Annotated[int, Form()] = 1) -> Response:
    """Tag, untag, delete or accept the suggestions of the images ticked in the grid."""
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
        problem, status = str(error), error.status
    if problem is not None:
        return _project_page(request, project_id, filter, page, status=status, bulk_error=problem)
    return RedirectResponse(grid_url(project_id, filter, page, changed=changed, did=action), 303)


def _apply_bulk(store, project_id: int, action: str, image_ids: list[int], tag_id: int | None) -> int:
    if action == "delete":
        return store.delete_images(project_id, image_ids)
    if action == "tag":
        return store.set_labels(project_id, image_ids, add=[tag_id], labelled_by="admin")
    if action == "untag":  # no tag chosen: take every tag off the selected images
        remove = [tag_id] if tag_id is not None else [t.id for t in store.tags(project_id)]
        return store.set_labels(project_id, image_ids, remove=remove, labelled_by="admin")
    return store.accept_suggestions(project_id, image_ids, labelled_by="admin")


@router.get("/{project_id}/images/{image_id}/thumb")
def thumbnail(request: Request, project_id: int, image_id: int) -> Response:
    """A small JPEG of a stored image for the grid (a stored image never changes, so it may be cached)."""

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
    """Queue an iteration and start a worker (as ``POST /api/v1/projects/{id}/iterations``); without
    JavaScript its page follows the progress."""
    from dermlens.api.routes.project_iterations import queue_training

    try:
        iteration = queue_training(request, project_id, kind, budget_minutes)
    except ProjectError as error:
        return _project_page(request, project_id, status=error.status, train_error=str(error),
                             train_form={"kind": kind, "budget_minutes": budget_minutes})
    return RedirectResponse(f"/projects/{project_id}/iterations/{iteration.number}", 303)


# settings -------------------------------------------------------------------------------------------
def _settings_page(request: Request, project_id: int, status: int = 200, **extra: Any) -> HTMLResponse:
    context = project_context(request, project_id, "settings", tags=True, published=True)
    base = str(request.base_url).rstrip("/")
    return render_page(request, "project_settings.html", {
        **context, "endpoint": f"{base}/api/v1/projects/{project_id}/predict", **extra}, status)


@router.get("/{project_id}/settings", response_class=HTMLResponse)
def settings_page(request: Request, project_id: int) -> Response:
    return _settings_page(request, project_id)


@router.post("/{project_id}/key", response_class=HTMLResponse)
def new_key(request: Request, project_id: int) -> Response:
    key = request.app.state.workspace.store.new_prediction_key(project_id)
    return _settings_page(request, project_id, new_key=key)


@router.post("/{project_id}/rename", response_class=HTMLResponse)
def rename_project(request: Request, project_id: int, name: Annotated[str, Form()] = "",
                   description: Annotated[str, Form()] = "") -> Response:
    try:
        request.app.state.workspace.store.rename_project(project_id, name, description)
    except ProjectError as error:
        return _settings_page(request, project_id, error.status, rename_error=str(error))
    return RedirectResponse(f"/projects/{project_id}/settings", 303)
