"""``GET /api/v1/health`` (for load balancers) and ``GET /api/v1/model`` (the model card summary)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from dermlens import __version__
from dermlens.api.schemas import HealthOut, ModelOut
from dermlens.inference.card import card_facts

router = APIRouter(prefix="/api/v1", tags=["service"])


@router.get("/health", response_model=HealthOut, summary="Is this worker up, and with which model")
def health(request: Request) -> dict[str, Any]:
    service = request.app.state.service
    card = service.predictor.model.info.get("card", {}) or {}
    return {"status": "ok", "version": __version__, "model": card.get("name", request.app.state.settings.model)}


@router.get("/model", response_model=ModelOut, summary="The model card: data, metrics, calibration, limits")
def model(request: Request) -> dict[str, Any]:
    return card_facts(request.app.state.service.predictor.model)
