"""``GET /api/v1/conditions`` and ``GET /api/v1/conditions/{code}``: the condition knowledge files."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from dermlens.api.errors import ClientError
from dermlens.api.schemas import ErrorOut
from dermlens.knowledge.catalogue import UnknownConditionError

router = APIRouter(prefix="/api/v1", tags=["conditions"])


def find_condition(request: Request, code: str):
    try:
        return request.app.state.service.catalogue.get(code)
    except UnknownConditionError as error:
        raise ClientError(404, "unknown_condition", str(error)) from None


@router.get("/conditions", summary="Every condition dermlens has a page for")
def list_conditions(request: Request) -> list[dict[str, Any]]:
    return [c.summary_dict() for c in request.app.state.service.catalogue.conditions]


@router.get("/conditions/{code}", summary="One condition: description, causes, signs, severity, when to "
            "see a doctor, references", responses={404: {"model": ErrorOut}})
def get_condition(request: Request, code: str) -> dict[str, Any]:
    return find_condition(request, code).to_dict()
