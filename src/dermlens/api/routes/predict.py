"""``POST /api/v1/predict``: an image (and optional details) in, the assessment as JSON out."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from starlette.concurrency import run_in_threadpool

from dermlens.api.routes.forms import patient_details
from dermlens.api.schemas import ErrorOut, PredictOut
from dermlens.api.uploads import uploaded_file
from dermlens.inference.assessment import PatientDetails

router = APIRouter(prefix="/api/v1", tags=["predict"])

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "No file, or an empty file."},
    413: {"model": ErrorOut, "description": "The file is over the size limit, or the image has too many pixels."},
    415: {"model": ErrorOut, "description": "Not an image, or an image type dermlens does not read."},
    422: {"model": ErrorOut, "description": "A truncated image, or an invalid field."},
    429: {"model": ErrorOut, "description": "Too many requests from this client; see Retry-After."},
}


@router.post("/predict", response_model=PredictOut, responses=ERRORS, summary="Classify one skin-lesion image")
async def predict(
    request: Request,
    details: Annotated[PatientDetails, Depends(patient_details)],
    image: Annotated[UploadFile | None, File(description="The photo: JPEG, PNG, TIFF, BMP or WebP.")] = None,
    keep: Annotated[bool, Form(description="Ask the server to keep the image (only if its operator "
                                           "turned storing on).")] = False,
    explain: Annotated[bool, Query(description="Add the Grad-CAM heatmap, lesion mask and ABCD features.")] = False,
) -> dict[str, Any]:
    """The ranked classes with calibrated probabilities, the status (ok, uncertain or rejected with a
    reason), the risk group, an urgency recommendation with the rule behind it, and the disclaimer."""
    del image  # declared for the OpenAPI docs; read with the same rules as the pages' upload form
    data, content_type = await uploaded_file(request, "image")
    service = request.app.state.service
    checked = await run_in_threadpool(service.check, data, content_type, details, explain=explain, keep=keep)
    out = checked.assessment.to_dict()
    out["kept"] = checked.kept_as is not None
    out["explanation"] = None if checked.explanation is None else checked.explanation.details()
    return out
