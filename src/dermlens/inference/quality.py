"""Image-quality gates: photos a model should not be asked about (too small, blurred, dark, blown out).

The thresholds are set from HAM10000 itself (`bench/quality_thresholds.py` measures them and the
model card records the figures): each gate rejects only images far outside what the 10,015 dermoscopic
training images look like, so a usable dermoscopic photo is almost never turned away.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from PIL import Image

from dermlens.data.images import Preprocessing

QualityIssue = Literal["too_small", "blurry", "too_dark", "too_bright"]

# Sharpness and brightness are measured at HAM10000's own resolution, so a 12-megapixel phone photo
# and a 200x150 dermoscopic image are judged on the same scale.
WORKING_SIZE = (200, 150)


@dataclass(frozen=True)
class QualityThresholds:
    """Limits of the quality gates (defaults measured on HAM10000; see the module docstring)."""

    min_side: int = 64  # pixels; HAM10000's smallest side is 150
    min_sharpness: float = 4.0  # variance of the Laplacian of grey levels at the working size (HAM min 5.8)
    min_brightness: float = 40.0  # mean grey level, 0-255 (HAM10000: 58 to 230)
    max_brightness: float = 235.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict | None) -> "QualityThresholds":
        defaults = cls()
        values = values or {}
        return cls(**{key: type(getattr(defaults, key))(values.get(key, getattr(defaults, key)))
                      for key in asdict(defaults)})


@dataclass(frozen=True)
class QualityMeasures:
    """What the gates look at, kept so a rejection can say by how much an image missed."""

    width: int
    height: int
    sharpness: float
    brightness: float


def working_grey(rgb: np.ndarray) -> np.ndarray:
    """float32 grey levels of ``rgb`` turned to landscape and resized to the working size, as the
    model's own preprocessing turns and resizes it."""
    landscape = Preprocessing(height=WORKING_SIZE[1], width=WORKING_SIZE[0]).resize(rgb)
    return np.asarray(Image.fromarray(landscape).convert("L"), dtype=np.float32)


def measure_quality(rgb: np.ndarray) -> QualityMeasures:
    """Size, sharpness (variance of the 4-neighbour Laplacian) and mean brightness of an RGB image.

    >>> flat = np.full((150, 200, 3), 128, np.uint8)
    >>> measure_quality(flat).sharpness
    0.0
    """
    grey = working_grey(rgb)
    laplacian = (grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:]
                 - 4.0 * grey[1:-1, 1:-1])
    return QualityMeasures(width=int(rgb.shape[1]), height=int(rgb.shape[0]),
                           sharpness=float(laplacian.var()), brightness=float(grey.mean()))


def quality_issue(measures: QualityMeasures, thresholds: QualityThresholds) -> QualityIssue | None:
    """The first gate an image fails, or None when it may be classified."""
    if min(measures.width, measures.height) < thresholds.min_side:
        return "too_small"
    if measures.brightness < thresholds.min_brightness:
        return "too_dark"
    if measures.brightness > thresholds.max_brightness:
        return "too_bright"
    if measures.sharpness < thresholds.min_sharpness:
        return "blurry"
    return None


ISSUE_MESSAGES: dict[str, str] = {
    "too_small": "The image is too small to judge; use a photo at least {min_side} pixels on each side.",
    "too_dark": "The image is too dark; retake it in better light.",
    "too_bright": "The image is overexposed; retake it without flash glare or direct sunlight.",
    "blurry": "The image is too blurred to judge; hold the camera steady and focus on the lesion.",
}
