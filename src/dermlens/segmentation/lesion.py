"""Find the lesion in a dermoscopic image: a classical, unsupervised method (numpy and scipy.ndimage).

The method, at a working size of at most 256 pixels on the long side:

1. Hairs: a greyscale closing of each channel (a small square, wider than a hair, narrower than a
   lesion) replaces thin dark lines by the surrounding colour, as in DullRazor (Lee et al. 1997).
2. The dermoscope's dark vignette: near-black pixels connected to the image border are outside the
   field of view and take no part in anything below.
3. The skin colour: the median CIELAB colour of the lighter half of a band along the image border
   (a lesion is darker than the skin around it, so the lighter half is skin even where the lesion
   reaches the border).
4. The lesion score of each pixel: its CIELAB distance from that skin colour, counting only darkening
   in lightness (glare and white scale inside a lesion are filled in step 6), lightly blurred.
5. Otsu's threshold of the score over the field of view, never below a minimal colour difference, so
   plain skin is not split in two by its own texture.
6. Opening (specks), closing (gaps), hole filling, then the connected component that overlaps the
   central half of the image the most (else the one nearest the centre).

A mask covering less than 1% or more than 95% of the image is reported as not found: the lesion is too
small to measure or fills the picture, and no border can be judged. This is a plausible outline for
display and rough ABCD features, not a validated segmentation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from dermlens.segmentation.colour import rgb_to_lab

WORKING_SIZE = 256
MIN_AREA_FRACTION = 0.01
MAX_AREA_FRACTION = 0.95
MIN_SCORE_THRESHOLD = 10.0  # CIELAB distance from the skin colour: about twice a just-noticeable difference
VIGNETTE_LIGHTNESS = 12.0  # CIELAB L below which a border-connected region is the dermoscope's black ring

@dataclass(frozen=True)
class LesionMask:
    """Where the lesion is: ``mask`` (bool, the image's height x width) and whether one was ``found``."""

    mask: np.ndarray
    found: bool
    area_fraction: float
    reason: str | None = None  # why not found: no_contrast, too_small (< 1% of the image) or too_large (> 95%)

    def to_dict(self) -> dict:
        return {"found": self.found, "area_fraction": self.area_fraction, "reason": self.reason}


def segment_lesion(rgb: np.ndarray) -> LesionMask:
    """uint8 (H, W, 3) dermoscopic image -> the `LesionMask` of its central lesion.

    >>> segment_lesion(np.full((64, 64, 3), 180, np.uint8)).reason
    'no_contrast'
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError("expected a uint8 RGB image (height x width x 3)")
    height, width = rgb.shape[:2]
    small = _working_copy(rgb)
    lab = rgb_to_lab(_remove_hair(small))
    view = ~_vignette(lab[..., 0])
    score = ndimage.gaussian_filter(_lesion_score(lab, view), sigma=1.0)
    inside = score[view]
    if inside.size == 0:
        return _not_found((height, width), "no_contrast")
    threshold = max(otsu_threshold(inside), MIN_SCORE_THRESHOLD)
    candidates = _clean(score > threshold) & view
    lesion = _central_component(candidates)
    if lesion is None:
        return _not_found((height, width), "no_contrast")
    mask = _resize_mask(lesion, (height, width))
    fraction = float(mask.mean())
    if fraction < MIN_AREA_FRACTION:
        return _not_found((height, width), "too_small", fraction)
    if fraction > MAX_AREA_FRACTION:
        return _not_found((height, width), "too_large", fraction)
    return LesionMask(mask, True, fraction)


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """The threshold that maximises the between-class variance of ``values`` (Otsu 1979).

    >>> 0 < otsu_threshold(np.r_[np.zeros(50), np.full(50, 10.0)]) < 10
    True
    """
    values = np.asarray(values, np.float64).ravel()
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return low
    counts, edges = np.histogram(values, bins=bins, range=(low, high))
    centres = (edges[:-1] + edges[1:]) / 2
    weight_below = np.cumsum(counts)
    weight_above = weight_below[-1] - weight_below
    sum_below = np.cumsum(counts * centres)
    mean_below = sum_below / np.maximum(weight_below, 1)
    mean_above = (sum_below[-1] - sum_below) / np.maximum(weight_above, 1)
    between = weight_below * weight_above * (mean_below - mean_above) ** 2
    return float(edges[int(np.argmax(between[:-1])) + 1])


def _working_copy(rgb: np.ndarray) -> np.ndarray:
    scale = WORKING_SIZE / max(rgb.shape[:2])
    if scale >= 1:
        return rgb
    from PIL import Image

    size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BOX))


def _remove_hair(rgb: np.ndarray) -> np.ndarray:
    side = max(3, round(max(rgb.shape[:2]) / 40) | 1)  # 7 px at 256: wider than hairs at that size
    return np.stack([ndimage.grey_closing(rgb[..., c], size=(side, side)) for c in range(3)], axis=-1)


def _vignette(lightness: np.ndarray) -> np.ndarray:
    dark = lightness < VIGNETTE_LIGHTNESS
    labels, _ = ndimage.label(dark)
    border = np.unique(np.r_[labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    return np.isin(labels, border[border > 0])


def _lesion_score(lab: np.ndarray, view: np.ndarray) -> np.ndarray:
    band = np.zeros(view.shape, bool)
    margin = max(2, round(min(view.shape) * 0.08))
    band[:margin], band[-margin:], band[:, :margin], band[:, -margin:] = True, True, True, True
    border = lab[band & view]
    if border.size == 0:
        border = lab[view] if view.any() else lab.reshape(-1, 3)
    lighter = border[border[:, 0] >= np.median(border[:, 0])]
    skin = np.median(lighter, axis=0)
    darkening = np.maximum(skin[0] - lab[..., 0], 0.0)
    chroma = lab[..., 1:] - skin[1:]
    score = np.sqrt(darkening ** 2 + (chroma ** 2).sum(axis=-1))
    return np.where(view, score, 0.0).astype(np.float32)


def _disc(radius: int) -> np.ndarray:
    y, x = np.ogrid[-radius:radius + 1, -radius:radius + 1]
    return x * x + y * y <= radius * radius


def _clean(mask: np.ndarray) -> np.ndarray:
    radius = max(1, round(max(mask.shape) / 128))  # 2 px at 256
    mask = ndimage.binary_opening(mask, _disc(radius))
    # pad before closing so a lesion touching the border is not eaten away from it
    padded = np.pad(mask, 2 * radius, mode="edge")
    mask = ndimage.binary_closing(padded, _disc(2 * radius))[2 * radius:-2 * radius, 2 * radius:-2 * radius]
    return ndimage.binary_fill_holes(mask)


def _central_component(mask: np.ndarray) -> np.ndarray | None:
    labels, count = ndimage.label(mask)
    if count == 0:
        return None
    height, width = mask.shape
    centre = np.zeros(mask.shape, bool)
    centre[height // 4: height - height // 4, width // 4: width - width // 4] = True
    index = np.arange(1, count + 1)
    central = ndimage.sum(centre, labels, index)
    if central.max() > 0:
        best = int(index[np.argmax(central)])
    else:
        rows, cols = np.nonzero(labels)
        distance = np.hypot(rows - (height - 1) / 2, cols - (width - 1) / 2)
        nearest = ndimage.minimum(distance, labels[rows, cols], index)
        best = int(index[np.argmin(nearest)])
    return labels == best


def _resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if mask.shape == size:
        return mask
    from PIL import Image

    image = Image.fromarray(mask.astype(np.uint8) * 255).resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.asarray(image) >= 128


def _not_found(size: tuple[int, int], reason: str, fraction: float = 0.0) -> LesionMask:
    return LesionMask(np.zeros(size, bool), False, fraction, reason)
