"""``/api/v1/projects/{id}/images``: upload (files, a zip, a folder, a CSV of labels), list and filter,
bulk-tag and delete a project's images. Needs the admin token."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from dermlens.api.auth import require_admin
from dermlens.api.errors import ClientError
from dermlens.projects.intake import ArchiveEntry, ZipLimits, zip_entries
from dermlens.projects.schema import as_utc
from dermlens.projects.store import AddedImages, ImageRow

router = APIRouter(prefix="/api/v1/projects/{project_id}/images", tags=["project images"],
                   dependencies=[Depends(require_admin)])


class Selection(BaseModel):
    image_ids: list[int] = Field(min_length=1, max_length=10_000)


class Tagging(Selection):
    add: list[int] = []
    remove: list[int] = []


def image_out(project_id: int, row: ImageRow) -> dict[str, Any]:
    image = row.image
    suggestion = None if row.suggestion is None else {"tag": row.suggestion.top_tag,
                                                      "probability": row.suggestion.top_probability}
    return {"id": image.id, "name": image.original_name, "width": image.width, "height": image.height,
            "source": image.source, "created_at": as_utc(image.created_at).isoformat(), "tags": row.tag_ids,
            "suggestion": suggestion, "url": f"/api/v1/projects/{project_id}/images/{image.id}/file"}


def _read_zip(data: bytes, limits: ZipLimits) -> list[ArchiveEntry]:
    return list(zip_entries(data, limits))


async def form_entries(request: Request) -> tuple[list[ArchiveEntry], list[int]]:
    """The files of an upload form (field ``images``, many; field ``archive``, a zip) and its ``tag`` ids."""
    if "multipart/form-data" not in request.headers.get("content-type", ""):
        raise ClientError(415, "unsupported_type", "Send the images as multipart/form-data: files in the "
                          "field 'images' and/or a zip in the field 'archive'.")
    settings = request.app.state.settings
    form = await request.form(max_files=100_000)
    entries: list[ArchiveEntry] = []
    for part in form.getlist("images"):
        if isinstance(part, UploadFile) and part.filename:
            data = await part.read()
            name = part.filename.replace("\\", "/")
            folder = name.rsplit("/", 2)[-2] if name.count("/") else None
            entries.append(ArchiveEntry(name, data, folder))
    for part in form.getlist("archive"):
        if isinstance(part, UploadFile) and part.filename:
            data = await part.read()
            limits = ZipLimits(max_total_bytes=max(settings.max_import_bytes * 4, 2**30))
            entries.extend(await run_in_threadpool(_read_zip, data, limits))
    if not entries:
        raise ClientError(400, "no_file", "No images were sent: attach them in the field 'images' (many files "
                          "or a folder) or a zip in the field 'archive'.")
    try:
        tag_ids = [int(v) for v in form.getlist("tag") if str(v).strip()]
    except ValueError:
        raise ClientError(422, "invalid_request", "The field 'tag' takes tag ids (numbers).") from None
    return entries, tag_ids


async def import_upload(request: Request, project_id: int) -> AddedImages:
    """Store the images of an upload form (`form_entries`) in the project, for this route and the project
    page's plain upload form."""
    from dermlens.projects.imports import import_entries

    workspace = request.app.state.workspace
    workspace.store.project(project_id)  # before reading the form
    entries, tag_ids = await form_entries(request)
    return await run_in_threadpool(import_entries, workspace.store, project_id, entries, tag_ids=tag_ids,
                                   source="upload", labelled_by="admin",
                                   max_pixels=request.app.state.settings.max_pixels)


@router.post("", status_code=201, summary="Upload images: many files, a folder, a zip, or images with a CSV")
async def upload_images(request: Request, project_id: int) -> dict[str, Any]:
    """Images are stored without metadata and deduplicated by content. Folder names (folder per tag) or
    a CSV of labels (ISIC/HAM10000 metadata, ISIC one-hot, or image_id,label) tag them, creating tags
    that do not exist yet; the ``tag`` fields tag every image sent."""
    result = await import_upload(request, project_id)
    return {"added": result.added, "duplicates": result.duplicates,
            "refused": [{"name": n, "reason": r} for n, r in result.refused]}


@router.get("", summary="List images: all, tagged, untagged, suggested (most uncertain first) or tag:<id>")
def list_images(request: Request, project_id: int, filter: str = "all",
                limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0)) -> dict[str, Any]:
    rows, total = request.app.state.workspace.store.images(project_id, filter, limit=limit, offset=offset)
    return {"total": total, "images": [image_out(project_id, row) for row in rows]}


@router.get("/{image_id}/file", summary="The stored image (PNG, without metadata)",
            response_class=Response, responses={200: {"content": {"image/png": {}}}})
def image_file(request: Request, project_id: int, image_id: int) -> Response:
    data = request.app.state.workspace.store.image_bytes(project_id, image_id)
    return Response(data, media_type="image/png", headers={"cache-control": "private, max-age=86400"})


@router.post("/tags", summary="Bulk tagging: add and remove tags on many images")
def tag_images(request: Request, project_id: int, body: Tagging) -> dict[str, int]:
    changed = request.app.state.workspace.store.set_labels(project_id, body.image_ids, add=body.add,
                                                           remove=body.remove, labelled_by="admin")
    return {"changed": changed}


@router.post("/delete", summary="Delete images")
def delete_images(request: Request, project_id: int, body: Selection) -> dict[str, int]:
    return {"deleted": request.app.state.workspace.store.delete_images(project_id, body.image_ids)}
