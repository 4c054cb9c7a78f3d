"""Predictions as JSON, CSV and ISIC challenge CSV: the output contracts of `dermlens predict` and the API."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Sequence

from dermlens.data.labels import ISIC_COLUMNS
from dermlens.inference.predictor import Prediction


def to_json(predictions: Sequence[Prediction], top_k: int | None = None) -> str:
    """A JSON array, one object per image (``image``, ``status``, ``reason``, ``probabilities``, ``top``)."""
    return json.dumps([p.to_dict(top_k) for p in predictions], indent=2)


def to_csv(predictions: Sequence[Prediction], classes: Sequence[str]) -> str:
    """One row per image: status, reason, top class, then each class's probability (empty if rejected)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["image", "status", "reason", "top_code", "top_probability", *classes])
    for p in predictions:
        top = p.top[0] if p.top else None
        writer.writerow([p.image, p.status, p.reason or "", top.code if top else "",
                         f"{top.probability:.6f}" if top else "",
                         *[f"{p.probabilities[c]:.6f}" if p.probabilities else "" for c in classes]])
    return out.getvalue()


def to_isic_csv(predictions: Sequence[Prediction], classes: Sequence[str]) -> str:
    """The ISIC challenge submission format: ``image,MEL,NV,...`` with ``image`` the file stem.

    A rejected image keeps its row with empty probabilities, so it is never silently missing.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["image", *[ISIC_COLUMNS.get(c, c.upper()) for c in classes]])
    for p in predictions:
        writer.writerow([Path(p.image).stem,
                         *[f"{p.probabilities[c]:.6f}" if p.probabilities else "" for c in classes]])
    return out.getvalue()
