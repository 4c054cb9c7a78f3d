"""The thresholds an exported model carries for serving: quality, not-skin and abstention.

They are chosen on the model's own validation data when it is exported (`dermlens.export.gates`)
and travel in the ONNX file's metadata, so every server running the file answers the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dermlens.inference.quality import QualityThresholds


@dataclass(frozen=True)
class ServingGates:
    """``not_skin_threshold`` None means the model has no not-skin check (exported without data)."""

    min_confidence: float = 0.5
    not_skin_threshold: float | None = None
    quality: QualityThresholds = field(default_factory=QualityThresholds)
    evidence: dict[str, Any] = field(default_factory=dict)  # the validation figures behind each value

    def to_dict(self) -> dict[str, Any]:
        return {"min_confidence": self.min_confidence, "not_skin_threshold": self.not_skin_threshold,
                "quality": self.quality.to_dict(), "evidence": self.evidence}

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> "ServingGates":
        values = values or {}
        threshold = values.get("not_skin_threshold")
        return cls(min_confidence=float(values.get("min_confidence", 0.5)),
                   not_skin_threshold=None if threshold is None else float(threshold),
                   quality=QualityThresholds.from_dict(values.get("quality")),
                   evidence=dict(values.get("evidence", {})))
