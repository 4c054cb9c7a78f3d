"""The HTML pages: home (upload), result, triage advice, conditions, about, API docs.

Plain forms drive the core flow, so it works without JavaScript; ``static/*.js`` add drag-and-drop, a
preview and the triage chat. The triage form carries the model's result in hidden fields: the server
keeps nothing between two requests.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from dermlens import DISCLAIMER, __version__
from dermlens.api.errors import ClientError
from dermlens.api.routes.forms import patient_details
from dermlens.api.routes.triage import triage_questions
from dermlens.api.uploads import uploaded_file
from dermlens.data.labels import display_name
from dermlens.data.metadata import SITES
from dermlens.inference.assessment import PatientDetails
from dermlens.inference.card import card_summary
from dermlens.knowledge.checklist import QUESTION_IDS

templates = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")
router = APIRouter(include_in_schema=False)

WHAT_TO_DO = {
    "blurry": "Retake the photo in focus: hold the camera steady, close to the lesion, in good light.",
    "too_dark": "Retake the photo in brighter, even light.",
    "too_bright": "Retake the photo without flash glare or direct sunlight.",
    "too_small": "Send a larger photo that shows the lesion close up.",
    "not_skin": "Send a close-up photo of one skin lesion, ideally taken with a dermoscope.",
    "low_confidence": "Show the lesion to a dermatologist; a dermoscopic photo may also help the model.",
    "rare_class_possible": "Show the lesion to a dermatologist: a serious condition cannot be ruled out.",
}


def render_page(request: Request, name: str, context: dict[str, Any], status: int = 200,
                headers: dict[str, str] | None = None) -> HTMLResponse:
    """A template with what every page shows (the disclaimer, the version, the upload settings)."""
    settings = request.app.state.settings
    base = {"disclaimer": DISCLAIMER, "version": __version__, "keeps_uploads": settings.keep_uploads_dir is not None,
            "max_upload_mb": settings.max_upload_mb}
    return templates.TemplateResponse(request, name, {**base, **context}, status_code=status, headers=headers)


def render_error(request: Request, status: int, code: str, message: str, headers=None) -> HTMLResponse:
    return render_page(request, "error.html", {"status": status, "code": code, "message": message}, status, headers)


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> HTMLResponse:
    return render_page(request, "home.html", {"sites": SITES})


@router.post("/assess", response_class=HTMLResponse)
async def assess_page(
    request: Request,
    details: Annotated[PatientDetails, Depends(patient_details)],
    keep: Annotated[bool, Form()] = False,
) -> HTMLResponse:
    data, content_type = await uploaded_file(request, "image", "photo")  # the file picker or the camera
    service = request.app.state.service
    try:
        checked = await run_in_threadpool(service.check, data, content_type, details, explain=True, keep=keep)
    except ClientError as error:
        return render_page(request, "home.html", {"sites": SITES, "error": error.message}, error.status)
    assessment, explanation = checked.assessment, checked.explanation
    prediction = assessment.prediction
    summary = assessment.result_summary()
    result_fields = {f"result_{key}": "" if value is None else value for key, value in summary.to_dict().items()}
    return render_page(request, "result.html", {
        "assessment": assessment,
        "what_to_do": WHAT_TO_DO.get(prediction.reason or ""),
        "images": explanation.images() if explanation is not None else {},
        "heatmap_name": display_name(explanation.heatmap_class) if explanation and explanation.heatmap_class else "",
        "abcd": explanation.abcd if explanation is not None else None,
        "questions": triage_questions(),
        "answers": assessment.answers,
        "result_fields": result_fields,
        "details": assessment.details,
        "model_name": service.predictor.model.info.get("card", {}).get("name", "dermlens model"),
        "now": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    })


@router.post("/triage", response_class=HTMLResponse)
async def triage_page(request: Request) -> HTMLResponse:
    from dermlens.api.routes.triage import run_triage

    form = await request.form()
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    result = {key[len("result_"):]: value for key, value in fields.items() if key.startswith("result_")}
    question = (fields.pop("question", "") or "").strip()
    ids = set(QUESTION_IDS)
    answers = {key: value for key, value in fields.items() if key in ids}
    step, answer = run_triage(answers, result, question, request.app.state.service.catalogue)
    carried = {key: value for key, value in fields.items() if key.startswith("result_") or key in ids}
    return render_page(request, "triage.html", {"step": step, "answer": answer, "question": question,
                                          "carried": carried})


@router.get("/conditions", response_class=HTMLResponse)
def conditions_page(request: Request) -> HTMLResponse:
    catalogue = request.app.state.service.catalogue
    groups: dict[str, list] = {}
    for condition in catalogue.conditions:
        groups.setdefault(condition.group, []).append(condition)
    return render_page(request, "conditions.html", {"groups": list(groups.items())})


@router.get("/conditions/{code}", response_class=HTMLResponse)
def condition_page(request: Request, code: str) -> HTMLResponse:
    from dermlens.api.routes.conditions import find_condition

    return render_page(request, "condition.html", {"c": find_condition(request, code)})


@router.get("/about", response_class=HTMLResponse)
def about(request: Request) -> HTMLResponse:
    return render_page(request, "about.html", {"card": card_summary(request.app.state.service.predictor.model)})


@router.get("/docs", response_class=HTMLResponse)
def docs(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "docs.html", {})
