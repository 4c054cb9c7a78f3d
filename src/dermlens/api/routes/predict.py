"""``POST /api/v1/predict``: an image (and optional details) in, the assessment as JSON out."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from starlette.concurrency import run_in_threadpool

from dermlens.api.routes.forms import patient_details
from dermlens.api.schemas import ErrorOut, PredictOut
from dermlens.inference.assessment import PatientDetails

router = APIRouter(prefix="/api/v1", tags=["predict"])

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "No file, or an empty file."},
    413: {"model": ErrorOut, "description": "The file is over the size limit, or the image has too many pixels."},
    415: {"model": ErrorOut, "description": "Not an image, or an image type dermlens does not read."},
    422: {"model": ErrorOut, "description": "A truncated image, or an invalid field."},
    429: {"model": ErrorOut, "description": "Too many requests from this client; see Retry-After."},
}


async def read_image_field(request: Request, image: UploadFile | None) -> tuple[bytes | None, str | None]:
    """The uploaded bytes; ``b""`` for a field sent empty (FastAPI turns an empty part into None)."""
    if image is None:
        sent = (await request.form()).get("image") if "multipart/" in request.headers.get("content-type", "") \
            else None
        return (None, None) if sent is None else (b"", None)
    return await image.read(), image.content_type


def explanation_dict(explanation) -> dict[str, Any] | None:
    if explanation is None:
        return None
    images = explanation.images()
    return {"heatmap_class": explanation.heatmap_class, "image": images.get("image"),
            "heatmap": images.get("heatmap"), "mask": images.get("mask"),
            "abcd": None if explanation.abcd is None else explanation.abcd.to_dict()}


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
    data, content_type = await read_image_field(request, image)
    service = request.app.state.service
    checked = await run_in_threadpool(service.check, data, content_type, details, explain=explain, keep=keep)
    out = checked.assessment.to_dict()
    out["kept"] = checked.kept_as is not None
    out["explanation"] = explanation_dict(checked.explanation)
    return out
