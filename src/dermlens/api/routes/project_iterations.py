"""Iterations of a project: train, follow, read metrics, compare, quick-test, publish, export, review;
and the published prediction endpoint, which takes the project's prediction key instead of the admin
token."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Header, Query, Request, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from dermlens.api.auth import require_admin
from dermlens.api.errors import ClientError
from dermlens.api.uploads import decode_upload, uploaded_file
from dermlens.projects.intake import StoredImage, image_from_pixels
from dermlens.projects.schema import Iteration, as_utc

ImageField = Annotated[UploadFile | None, File(description="JPEG, PNG, TIFF, BMP or WebP")]
router = APIRouter(prefix="/api/v1/projects/{project_id}", tags=["project iterations"])
admin = [Depends(require_admin)]


class TrainIn(BaseModel):
    kind: Literal["quick", "advanced"] = "quick"
    budget_minutes: float = Field(10.0, ge=1, le=24 * 60, description="Advanced only: the time budget.")


class PublishIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)


class CorrectionIn(BaseModel):
    tag_id: int


class ExportIn(BaseModel):
    format: str = Field(description="onnx, onnx-int8, torchscript, openvino, tflite, coreml or docker")


def iteration_out(iteration: Iteration) -> dict[str, Any]:
    metrics = iteration.metrics or {}
    return {"number": iteration.number, "kind": iteration.kind, "status": iteration.status,
            "progress": iteration.progress, "message": iteration.message, "warnings": iteration.warnings,
            "tags": iteration.config.get("tags", []), "images_per_tag": iteration.config.get("images_per_tag", {}),
            "budget_minutes": iteration.config.get("budget_minutes"),
            "mean_average_precision": metrics.get("mean_average_precision"),
            "validation": metrics.get("validation"),
            "created_at": as_utc(iteration.created_at).isoformat(),
            "finished_at": as_utc(iteration.finished_at).isoformat() if iteration.finished_at else None}


async def stored_upload(request: Request, field: str = "image") -> StoredImage:
    """The uploaded image of ``field``, checked like every upload and prepared for a project."""
    settings = request.app.state.settings
    data, content_type = await uploaded_file(request, field)
    pixels = await run_in_threadpool(decode_upload, data, content_type, max_bytes=settings.max_upload_bytes,
                                     max_pixels=settings.max_pixels)
    return image_from_pixels(pixels, "upload")


def queue_training(request: Request, project_id: int, kind: str, budget_minutes: float) -> Iteration:
    """Queue an iteration and, when this server starts the workers, start one (refused first when this
    install cannot train); for this API and the project page's train form."""
    from dermlens.projects.jobs import check_can_train, start_worker

    workspace = request.app.state.workspace
    local = request.app.state.settings.start_workers
    if local:
        check_can_train()
    iteration = workspace.iterations.queue(project_id, kind, budget_minutes=budget_minutes)
    if local:
        start_worker(workspace.data_dir, workspace.database_url)
    return iteration


@router.post("/iterations", status_code=202, dependencies=admin, summary="Train an iteration (a background job)")
def train(request: Request, project_id: int, body: TrainIn) -> dict[str, Any]:
    """Queues the iteration and starts a training process; follow it with GET .../iterations/{number}.
    Refused (422) when a tag has fewer than 5 images; a warning says when tags are unbalanced."""
    return iteration_out(queue_training(request, project_id, body.kind, body.budget_minutes))


@router.get("/iterations", dependencies=admin, summary="The project's iterations")
def list_iterations(request: Request, project_id: int) -> list[dict[str, Any]]:
    return [iteration_out(i) for i in request.app.state.workspace.iterations.list(project_id)]


@router.get("/iterations/{number}", dependencies=admin, summary="One iteration: status and live progress")
def get_iteration(request: Request, project_id: int, number: int) -> dict[str, Any]:
    return iteration_out(request.app.state.workspace.iterations.get(project_id, number))


@router.delete("/iterations/{number}", status_code=204, dependencies=admin, summary="Delete an iteration")
def delete_iteration(request: Request, project_id: int, number: int) -> None:
    request.app.state.workspace.iterations.delete(project_id, number)


@router.get("/iterations/{number}/metrics", dependencies=admin,
            summary="Precision and recall per tag at a threshold, average precision, confusion matrix")
def iteration_metrics(request: Request, project_id: int, number: int,
                      threshold: float = Query(0.5, ge=0.0, le=1.0)) -> dict[str, Any]:
    from dermlens.projects.metrics import metrics_at

    iteration = request.app.state.workspace.iterations.completed(project_id, number)
    return metrics_at(iteration.metrics, threshold, multiclass=iteration.config["project_kind"] == "multiclass")


@router.get("/compare", dependencies=admin, summary="Two iterations side by side")
def compare_iterations(request: Request, project_id: int, first: int, second: int,
                       threshold: float = Query(0.5, ge=0.0, le=1.0)) -> dict[str, Any]:
    from dermlens.projects.metrics import compare, metrics_at

    iterations = request.app.state.workspace.iterations
    a, b = (iterations.completed(project_id, n) for n in (first, second))
    multiclass = a.config["project_kind"] == "multiclass"
    ma, mb = metrics_at(a.metrics, threshold, multiclass=multiclass), metrics_at(b.metrics, threshold,
                                                                                multiclass=multiclass)
    return {"threshold": threshold, "first": {"iteration": first, **ma}, "second": {"iteration": second, **mb},
            "tags": compare(ma, mb)}


@router.post("/iterations/{number}/quick-test", dependencies=admin, summary="Tags of one image (nothing kept)")
async def quick_test(request: Request, project_id: int, number: int,
                     image: ImageField = None) -> dict:
    del image  # read with the same checks as every upload
    stored = await stored_upload(request)
    publishing = request.app.state.workspace.publishing
    return (await run_in_threadpool(publishing.quick_test, project_id, number, stored)).to_dict()


@router.post("/iterations/{number}/publish", dependencies=admin, summary="Publish an iteration under a name")
def publish(request: Request, project_id: int, number: int, body: PublishIn) -> dict[str, Any]:
    request.app.state.workspace.publishing.publish(project_id, number, body.name)
    return {"published": body.name, "iteration": number, "endpoint": f"/api/v1/projects/{project_id}/predict"}


@router.delete("/publish", status_code=204, dependencies=admin, summary="Unpublish (the endpoint stops answering)")
def unpublish(request: Request, project_id: int) -> None:
    request.app.state.workspace.publishing.unpublish(project_id)


@router.post("/predict", summary="Predict with the published iteration (needs the Prediction-Key header)")
async def predict(request: Request, project_id: int,
                  prediction_key: str | None = Header(None, alias="Prediction-Key"),
                  keep: bool = Query(False, description="Keep the image and answer for review and retraining"),
                  image: ImageField = None) -> dict:
    del image
    publishing = request.app.state.workspace.publishing
    publishing.check_key(project_id, prediction_key)  # before reading the image: no key, no work
    stored = await stored_upload(request)
    answer = await run_in_threadpool(lambda: publishing.predict(project_id, prediction_key, stored, keep=keep))
    return {**answer.to_dict(), "kept": answer.prediction_id is not None}


@router.get("/predictions", dependencies=admin, summary="Kept predictions to review, wrong ones first")
def review(request: Request, project_id: int, include_reviewed: bool = False,
           limit: int = Query(100, ge=1, le=1000)) -> list[dict[str, Any]]:
    return request.app.state.workspace.publishing.review(project_id, include_reviewed=include_reviewed, limit=limit)


@router.post("/predictions/{prediction_id}/correct", dependencies=admin,
             summary="Re-tag a kept prediction's image; it joins the next iteration's training set")
def correct(request: Request, project_id: int, prediction_id: int, body: CorrectionIn) -> dict[str, str]:
    request.app.state.workspace.publishing.correct(project_id, prediction_id, body.tag_id, by="admin")
    return {"status": "corrected"}


@router.post("/predictions/{prediction_id}/confirm", dependencies=admin,
             summary="The prediction was right: tag the image with it")
def confirm(request: Request, project_id: int, prediction_id: int) -> dict[str, str]:
    request.app.state.workspace.publishing.confirm(project_id, prediction_id, by="admin")
    return {"status": "confirmed"}


@functools.lru_cache(maxsize=16)
def _summary(model_path: str):
    """The summary of one model file (an iteration's model never changes, and its path names its key)."""
    from dermlens.export.summary import model_summary as summarise

    return summarise(Path(model_path))


def iteration_summary(workspace, iteration: Iteration) -> dict[str, Any]:
    """A completed iteration's network: layers, output shapes, parameters (`dermlens.export.summary`)."""
    return _summary(str(workspace.publishing.model_path(iteration))).to_dict()


@router.get("/iterations/{number}/summary", dependencies=admin, summary="The network's layers, shapes, parameters")
def model_summary(request: Request, project_id: int, number: int) -> dict[str, Any]:
    workspace = request.app.state.workspace
    return iteration_summary(workspace, workspace.iterations.completed(project_id, number))


def formats_out() -> list[dict[str, Any]]:
    """Every export format and, when it cannot be produced here, what to install."""
    from dermlens.export.formats import available_formats

    return [{"format": f.value, "available": reason is None, "reason": reason}
            for f, reason in available_formats().items()]


@router.get("/exports", dependencies=admin, summary="Export formats and whether each can be produced here")
def export_formats(request: Request, project_id: int) -> list[dict[str, Any]]:
    request.app.state.workspace.store.project(project_id)
    return formats_out()


def export_out(workspace, project_id: int, number: int, fmt: str) -> dict[str, Any]:
    """Export an iteration and check it (`export_for_download`); -> what happened, with the download URL."""
    from dermlens.projects.exporting import export_for_download

    result = export_for_download(workspace, project_id, number, fmt)
    download = (f"/api/v1/projects/{project_id}/iterations/{number}/exports/{result.format.value}"
                if result.produced else None)
    return {"format": result.format.value, "produced": result.produced, "verified": result.verified,
            "agreement": result.agreement, "message": result.message, "download": download}


@router.post("/iterations/{number}/export", dependencies=admin,
             summary="Export an iteration, load it back and check it against the original")
def export_iteration(request: Request, project_id: int, number: int, body: ExportIn) -> dict[str, Any]:
    return export_out(request.app.state.workspace, project_id, number, body.format)


@router.get("/iterations/{number}/exports/{fmt}", dependencies=admin, summary="Download an export",
            response_class=FileResponse)
def download_export(request: Request, project_id: int, number: int, fmt: str) -> FileResponse:
    from dermlens.projects.exporting import exported_file

    path = exported_file(request.app.state.workspace, project_id, number, fmt)
    if path is None:
        raise ClientError(404, "not_found", f"iteration {number} has no {fmt} export yet; export it first "
                          f"(POST .../iterations/{number}/export)")
    return FileResponse(path, filename=f"project{project_id}-iteration{number}-{path.name}")
