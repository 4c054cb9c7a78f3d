"""The JSON the REST API returns, as pydantic models: they document the API at ``/docs``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from dermlens.inference.predictor import Status


class ErrorOut(BaseModel):
    error: str = Field(description="A stable code, e.g. not_an_image, file_too_large, rate_limited.")
    message: str = Field(description="What went wrong and what to do, for a person.")


class RankedClassOut(BaseModel):
    code: str
    name: str
    probability: float


class ReferenceOut(BaseModel):
    title: str
    url: str
    publisher: str | None = None


class UrgencyOut(BaseModel):
    level: str = Field(description="urgent, soon, routine or not_assessed.")
    title: str
    advice: str
    rule: str = Field(description="The id of the rule this advice comes from.")
    because: str = Field(description="The rule in words, with the figures it used.")
    source: ReferenceOut | None = None


class RiskOut(BaseModel):
    group: str = Field(description="malignant, pre-malignant or benign: the group of the class the model names.")
    label: str
    condition_code: str
    condition_name: str


class ABCDOut(BaseModel):
    asymmetry: float
    border_irregularity: float
    colour_count: int
    colours: list[str]
    diameter_px: float
    area_px: float | None = None


class ExplanationOut(BaseModel):
    heatmap_class: str | None = Field(description="The class the Grad-CAM heatmap is for.")
    image: str | None = Field(description="The image as the model saw it, a PNG data URL.")
    heatmap: str | None = Field(description="Grad-CAM over the image, a PNG data URL.")
    mask: str | None = Field(description="The lesion outline from segmentation, a PNG data URL.")
    abcd: ABCDOut | None = None


class PredictOut(BaseModel):
    status: Status
    reason: str | None = Field(description="Why the status is not ok: low_confidence, rare_class_possible, "
                                           "blurry, too_dark, too_bright, too_small, not_skin...")
    message: str
    top: list[RankedClassOut] = Field(description="Classes by probability (empty when rejected).")
    probabilities: dict[str, float] | None
    decision: str | None = Field(description="The class the model names after favouring rare, serious classes.")
    risk: RiskOut | None
    urgency: UrgencyOut
    rules_applied: list[UrgencyOut]
    disclaimer: str
    kept: bool = Field(False, description="Whether the image was stored (only with operator and sender consent).")
    explanation: ExplanationOut | None = None


class HealthOut(BaseModel):
    status: Literal["ok"]
    version: str
    model: str


class ModelOut(BaseModel):
    name: str
    version: str | None
    backbone: str | None
    input_size: list[int] = Field(description="[width, height] in pixels.")
    members: list[dict] = Field(default_factory=list, description="An ensemble's members ({name, backbone, "
                                "width, height}), the first one primary; empty for a single model.")
    classes: list[dict[str, str]] = Field(description="[{code, name}] in the order of the model outputs.")
    held_out: dict | None
    external: dict | None
    calibration: dict
    abstention: dict
    not_skin_check: dict | None
    limits: list[str]
    intended_use: str
    summary: str = Field(description="The model card as text, as `dermlens info` prints it.")
    disclaimer: str
