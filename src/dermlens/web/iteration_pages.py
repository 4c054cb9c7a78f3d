"""The pages of one iteration (metrics with the threshold slider, quick test, publish, export, model
topology), the comparison of two iterations, and the review of kept predictions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from dermlens.api.errors import ClientError
from dermlens.projects.errors import Conflict, ProjectError
from dermlens.projects.schema import IterationStatus
from dermlens.web.pages import render_page
from dermlens.web.project_access import require_page_access, safe_next
from dermlens.web.project_pages import project_context

router = APIRouter(prefix="/projects", include_in_schema=False, dependencies=[Depends(require_page_access)])


# iterations -----------------------------------------------------------------------------------------
def _metrics(iteration, threshold: float) -> dict | None:
    from dermlens.projects.metrics import metrics_at

    if iteration.status != IterationStatus.completed.value or not iteration.metrics:
        return None
    return metrics_at(iteration.metrics, threshold, multiclass=iteration.config.get("project_kind") == "multiclass")


def _iteration_page(request: Request, project_id: int, number: int, threshold: float = 0.5, status: int = 200,
                    **extra: Any) -> HTMLResponse:
    from dermlens.api.routes.project_iterations import formats_out

    workspace = request.app.state.workspace
    context = project_context(request, project_id, "iterations", published=True)
    iteration = workspace.iterations.get(project_id, number)
    metrics = _metrics(iteration, threshold)
    others = [i.number for i in workspace.iterations.list(project_id)
              if i.number != number and i.status == IterationStatus.completed.value]
    project = context["project"]
    context.update({"iteration": iteration, "metrics": metrics, "threshold": threshold, "others": others,
                    "published": project.published_iteration_id == iteration.id,
                    "formats": formats_out() if metrics is not None else [],
                    "following": iteration.status in (IterationStatus.queued.value, IterationStatus.running.value)})
    return render_page(request, "project_iteration.html", {**context, **extra}, status)


@router.get("/{project_id}/iterations/{number}", response_class=HTMLResponse)
def iteration_page(request: Request, project_id: int, number: int,
                   threshold: float = Query(0.5, ge=0.0, le=1.0)) -> Response:
    return _iteration_page(request, project_id, number, threshold)


@router.post("/{project_id}/iterations/{number}/delete")
def delete_iteration(request: Request, project_id: int, number: int) -> Response:
    try:
        request.app.state.workspace.iterations.delete(project_id, number)
    except Conflict as error:
        return _iteration_page(request, project_id, number, status=409, iteration_error=str(error))
    return RedirectResponse(f"/projects/{project_id}#iterations", 303)


@router.post("/{project_id}/iterations/{number}/quick-test", response_class=HTMLResponse)
async def quick_test(request: Request, project_id: int, number: int) -> Response:
    from dermlens.api.routes.project_iterations import stored_upload

    publishing = request.app.state.workspace.publishing
    try:
        stored = await stored_upload(request)
        answer = await run_in_threadpool(publishing.quick_test, project_id, number, stored)
    except ClientError as error:
        return _iteration_page(request, project_id, number, status=error.status, quick_test_error=error.message)
    except ProjectError as error:
        return _iteration_page(request, project_id, number, status=error.status, quick_test_error=str(error))
    return _iteration_page(request, project_id, number, quick_test=answer)


@router.post("/{project_id}/iterations/{number}/publish", response_class=HTMLResponse)
def publish(request: Request, project_id: int, number: int, name: Annotated[str, Form()] = "") -> Response:
    try:
        request.app.state.workspace.publishing.publish(project_id, number, name)
    except ProjectError as error:
        return _iteration_page(request, project_id, number, status=error.status, publish_error=str(error))
    return RedirectResponse(f"/projects/{project_id}/iterations/{number}#publish", 303)


@router.post("/{project_id}/unpublish")
def unpublish(request: Request, project_id: int, next: Annotated[str, Form()] = "") -> Response:
    request.app.state.workspace.publishing.unpublish(project_id)
    back = next if next.startswith(f"/projects/{project_id}") else ""
    return RedirectResponse(safe_next(back or f"/projects/{project_id}/settings"), 303)


@router.post("/{project_id}/iterations/{number}/export", response_class=HTMLResponse)
async def export(request: Request, project_id: int, number: int, format: Annotated[str, Form()] = "onnx") -> Response:
    from dermlens.api.routes.project_iterations import export_out

    workspace = request.app.state.workspace
    try:
        exported = await run_in_threadpool(export_out, workspace, project_id, number, format)
    except ProjectError as error:
        return _iteration_page(request, project_id, number, status=error.status, export_error=str(error))
    return _iteration_page(request, project_id, number, exported=exported)


@router.get("/{project_id}/iterations/{number}/model", response_class=HTMLResponse)
def model_page(request: Request, project_id: int, number: int) -> Response:
    """The network's layers, output shapes and parameter counts (``GET .../summary`` in the API)."""
    from dermlens.api.routes.project_iterations import iteration_summary

    workspace = request.app.state.workspace
    iteration = workspace.iterations.completed(project_id, number)
    summary = iteration_summary(workspace, iteration)
    context = project_context(request, project_id, "iterations")
    return render_page(request, "project_model.html", {**context, "iteration": iteration, "summary": summary})


@router.get("/{project_id}/compare", response_class=HTMLResponse)
def compare_page(request: Request, project_id: int, first: int, second: int,
                 threshold: float = Query(0.5, ge=0.0, le=1.0)) -> Response:
    from dermlens.projects.metrics import compare

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
    context = project_context(request, project_id, "review", tags=True)
    context["predictions"] = request.app.state.workspace.publishing.review(project_id)
    return render_page(request, "project_review.html", {**context, **extra}, status)


@router.get("/{project_id}/review", response_class=HTMLResponse)
def review_page(request: Request, project_id: int) -> Response:
    return _review_page(request, project_id)


@router.post("/{project_id}/review/{prediction_id}/{verdict}", response_class=HTMLResponse)
def review_verdict(request: Request, project_id: int, prediction_id: int, verdict: str,
                   tag_id: Annotated[int | None, Form()] = None) -> Response:
    publishing = request.app.state.workspace.publishing
    try:
        if verdict == "confirm":
            publishing.confirm(project_id, prediction_id, by="admin")
        elif verdict == "correct" and tag_id is not None:
            publishing.correct(project_id, prediction_id, tag_id, by="admin")
        else:
            return _review_page(request, project_id, 422, review_error="Choose the right tag, or confirm.")
    except ProjectError as error:
        return _review_page(request, project_id, error.status, review_error=str(error))
    return RedirectResponse(f"/projects/{project_id}/review", 303)
