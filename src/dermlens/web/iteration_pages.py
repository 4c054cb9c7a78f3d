"""The pages of one iteration (metrics with the threshold slider, quick test, publish, export, model
topology), the comparison of two iterations, and the review of kept predictions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from dermlens.api.errors import ClientError
from dermlens.projects.errors import Conflict, ProjectError
from dermlens.projects.schema import IterationStatus
from dermlens.web.pages import render_page
from dermlens.web.project_access import refused_page, safe_next, status_of
from dermlens.web.project_pages import project_context

router = APIRouter(prefix="/projects", include_in_schema=False)


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
    context = project_context(request, project_id, "iterations")
    iteration = workspace.iterations.get(project_id, number)
    metrics = _metrics(iteration, threshold)
    others = [i.number for i in workspace.iterations.list(project_id)
              if i.number != number and i.status == IterationStatus.completed.value]
    project = context["project"]
    context.update({"iteration": iteration, "metrics": metrics, "threshold": threshold, "others": others,
                    "published": project.published_iteration_id == iteration.id,
                    "formats": _export_formats() if metrics is not None else [],
                    "following": iteration.status in (IterationStatus.queued.value, IterationStatus.running.value)})
    return render_page(request, "project_iteration.html", {**context, **extra}, status)


@router.get("/{project_id}/iterations/{number}", response_class=HTMLResponse)
def iteration_page(request: Request, project_id: int, number: int,
                   threshold: float = Query(0.5, ge=0.0, le=1.0)) -> Response:
    return refused_page(request) or _iteration_page(request, project_id, number, threshold)


@router.post("/{project_id}/iterations/{number}/delete")
def delete_iteration(request: Request, project_id: int, number: int) -> Response:
    if refused := refused_page(request):
        return refused
    try:
        request.app.state.workspace.iterations.delete(project_id, number)
    except Conflict as error:
        return _iteration_page(request, project_id, number, status=409, iteration_error=str(error))
    return RedirectResponse(f"/projects/{project_id}#iterations", 303)


@router.post("/{project_id}/iterations/{number}/quick-test", response_class=HTMLResponse)
async def quick_test(request: Request, project_id: int, number: int) -> Response:
    from dermlens.api.routes.project_iterations import stored_upload

    if refused := refused_page(request):
        return refused
    publishing = request.app.state.workspace.publishing
    try:
        stored = await stored_upload(request)
        answer = await run_in_threadpool(publishing.quick_test, project_id, number, stored)
    except ClientError as error:
        return _iteration_page(request, project_id, number, status=error.status, quick_test_error=error.message)
    except ProjectError as error:
        return _iteration_page(request, project_id, number, status=status_of(error), quick_test_error=str(error))
    return _iteration_page(request, project_id, number, quick_test=answer)


@router.post("/{project_id}/iterations/{number}/publish", response_class=HTMLResponse)
def publish(request: Request, project_id: int, number: int, name: Annotated[str, Form()] = "") -> Response:
    if refused := refused_page(request):
        return refused
    try:
        request.app.state.workspace.publishing.publish(project_id, number, name)
    except ProjectError as error:
        return _iteration_page(request, project_id, number, status=status_of(error), publish_error=str(error))
    return RedirectResponse(f"/projects/{project_id}/iterations/{number}#publish", 303)


@router.post("/{project_id}/unpublish")
def unpublish(request: Request, project_id: int, next: Annotated[str, Form()] = "") -> Response:
    if refused := refused_page(request):
        return refused
    request.app.state.workspace.publishing.unpublish(project_id)
    back = next if next.startswith(f"/projects/{project_id}") else ""
    return RedirectResponse(safe_next(back or f"/projects/{project_id}/settings"), 303)


@router.post("/{project_id}/iterations/{number}/export", response_class=HTMLResponse)
async def export(request: Request, project_id: int, number: int, format: Annotated[str, Form()] = "onnx") -> Response:
    from dermlens.projects.exporting import export_for_download

    if refused := refused_page(request):
        return refused
    workspace = request.app.state.workspace
    try:
        result = await run_in_threadpool(export_for_download, workspace, project_id, number, format)
    except ProjectError as error:
        return _iteration_page(request, project_id, number, status=status_of(error), export_error=str(error))
    download = (f"/api/v1/projects/{project_id}/iterations/{number}/exports/{result.format.value}"
                if result.produced else None)
    return _iteration_page(request, project_id, number, exported={
        "format": result.format.value, "produced": result.produced, "verified": result.verified,
        "agreement": result.agreement, "message": result.message, "download": download})


@router.get("/{project_id}/iterations/{number}/model", response_class=HTMLResponse)
def model_page(request: Request, project_id: int, number: int) -> Response:
    """The network's layers, output shapes and parameter counts (``GET .../summary`` in the API)."""
    from dermlens.export.summary import model_summary

    if refused := refused_page(request):
        return refused
    workspace = request.app.state.workspace
    iteration = workspace.iterations.completed(project_id, number)
    summary = model_summary(workspace.publishing.model_path(iteration)).to_dict()
    context = project_context(request, project_id, "iterations")
    return render_page(request, "project_model.html", {**context, "iteration": iteration, "summary": summary})


@router.get("/{project_id}/compare", response_class=HTMLResponse)
def compare_page(request: Request, project_id: int, first: int, second: int,
                 threshold: float = Query(0.5, ge=0.0, le=1.0)) -> Response:
    from dermlens.projects.metrics import compare

    if refused := refused_page(request):
        return refused
    iterations = request.app.state.workspace.iterations
    a, b = iterations.completed(project_id, first), iterations.completed(project_id, second)
    ma, mb = _metrics(a, threshold), _metrics(b, threshold)
    context = project_context(request, project_id, "iterations")
    completed = [i.number for i in iterations.list(project_id) if i.status == IterationStatus.completed.value]
    return render_page(request, "project_compare.html", {
        **context, "first": a, "second": b, "a": ma, "b": mb, "rows": compare(ma, mb), "threshold": threshold,
        "completed": completed})


# review and settings --------------------------------------------------------------------------------
def _review_page(request: Request, project_id: int, status: int = 200, **extra: Any) -> HTMLResponse:
    context = project_context(request, project_id, "review")
    context["predictions"] = request.app.state.workspace.publishing.review(project_id)
    return render_page(request, "project_review.html", {**context, **extra}, status)


@router.get("/{project_id}/review", response_class=HTMLResponse)
def review_page(request: Request, project_id: int) -> Response:
    return refused_page(request) or _review_page(request, project_id)


@router.post("/{project_id}/review/{prediction_id}/{verdict}", response_class=HTMLResponse)
def review_verdict(request: Request, project_id: int, prediction_id: int, verdict: str,
                   tag_id: Annotated[int | None, Form()] = None) -> Response:
    if refused := refused_page(request):
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
        return _review_page(request, project_id, status_of(error), review_error=str(error))
    return RedirectResponse(f"/projects/{project_id}/review", 303)
