"""The ABCD features of a lesion mask (Stolz et al. 1994), measured in pixels, for display beside a result.

- Asymmetry: the mask is mirrored about each of its two principal axes through its centroid;
  asymmetry about an axis is 1 - IoU(mask, mirror image). ``asymmetry`` is the mean over the two
  axes (0 for an ellipse, towards 1 for a lopsided shape); both values are in ``asymmetry_by_axis``.
  (The clinical rule counts asymmetric axes, 0 to 2, from shape, colour and structure; this is its
  shape part, as a continuous score.)
- Border irregularity: the compactness index perimeter^2 / (4 pi area), 1 for a disc, larger for a
  ragged or elongated outline. The perimeter is the Cauchy-Crofton estimate from boundary crossings in
  four directions, nearly unbiased for round shapes, unlike counting boundary pixels.
- Colours: each lesion pixel takes the nearest of the six dermoscopic reference colours in CIELAB
  (`dermlens.segmentation.colour`), unless it is farther than ``MAX_COLOUR_DISTANCE`` from all of them
  or within ``SKIN_DISTANCE`` of the skin around the lesion (the median colour of a ring outside the
  mask: skin-coloured pixels inside an outline are no lesion colour); a colour counts when it covers
  at least ``MIN_COLOUR_FRACTION`` of the lesion.
- Diameter: the largest distance between two boundary pixels (centres), in pixels of the given image.

These are descriptive measurements of an automatic outline, not the clinical ABCD score or a diagnosis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from dermlens.segmentation.colour import reference_lab, rgb_to_lab

MIN_COLOUR_FRACTION = 0.05
MAX_COLOUR_DISTANCE = 30.0  # CIELAB; a pixel farther from every reference (glare, ink) has no colour
SKIN_DISTANCE = 10.0  # CIELAB; about twice a just-noticeable difference


@dataclass(frozen=True)
class ABCDFeatures:
    """Shape and colour measurements of one lesion mask."""

    asymmetry: float
    asymmetry_by_axis: tuple[float, float]
    border_irregularity: float
    colour_count: int
    colours: tuple[str, ...]
    colour_fractions: dict[str, float]
    diameter_px: float
    area_px: int

    def to_dict(self) -> dict:
        return {"asymmetry": self.asymmetry, "asymmetry_by_axis": list(self.asymmetry_by_axis),
                "border_irregularity": self.border_irregularity, "colour_count": self.colour_count,
                "colours": list(self.colours), "colour_fractions": dict(self.colour_fractions),
                "diameter_px": self.diameter_px, "area_px": self.area_px}


def abcd_features(rgb: np.ndarray, mask: np.ndarray) -> ABCDFeatures:
    """uint8 (H, W, 3) image and bool (H, W) lesion mask -> `ABCDFeatures`.

    >>> y, x = np.ogrid[:64, :64]
    >>> disc = (y - 32) ** 2 + (x - 32) ** 2 <= 20 ** 2
    >>> abcd_features(np.zeros((64, 64, 3), np.uint8), disc).diameter_px
    40.0
    """
    mask = np.asarray(mask, bool)
    if mask.shape != rgb.shape[:2]:
        raise ValueError(f"the mask is {mask.shape} but the image is {rgb.shape[:2]}")
    area = int(mask.sum())
    if area == 0:
        raise ValueError("the lesion mask is empty")
    by_axis = asymmetry_by_axis(mask)
    fractions = colour_fractions(rgb, mask)
    present = tuple(name for name, fraction in fractions.items() if fraction >= MIN_COLOUR_FRACTION)
    return ABCDFeatures(asymmetry=float(np.mean(by_axis)), asymmetry_by_axis=by_axis,
                        border_irregularity=compactness(mask), colour_count=len(present), colours=present,
                        colour_fractions=fractions, diameter_px=diameter(mask), area_px=area)


def asymmetry_by_axis(mask: np.ndarray) -> tuple[float, float]:
    """1 - IoU of the mask with its mirror image about its major, then its minor principal axis.

    A mirror image has the mask's area, so IoU = overlap / (2 area - overlap), where the overlap counts
    the mask pixels whose mirror image (to the nearest pixel) is in the mask too.
    """
    points = np.argwhere(mask).astype(np.float64)
    if len(points) < 3:
        return 0.0, 0.0
    centroid = points.mean(axis=0)
    centred = points - centroid
    _, axes = np.linalg.eigh(centred.T @ centred)
    values = np.asarray(mask, np.uint8)
    scores = []
    for direction in (axes[:, 1], axes[:, 0]):  # eigh sorts ascending: the major axis is last
        # mirror about the line through the centroid along `direction`: p -> 2 (p.d) d - p
        mirrored = 2 * (centred @ direction)[:, None] * direction - centred + centroid
        overlap = float(ndimage.map_coordinates(values, mirrored.T, order=0, cval=0).sum())
        scores.append(1.0 - overlap / (2 * len(points) - overlap))
    return scores[0], scores[1]


def perimeter(mask: np.ndarray) -> float:
    """The Cauchy-Crofton perimeter: pi/8 times the boundary crossings along rows, columns and both
    diagonals (the diagonal lines lie 1/sqrt(2) apart)."""
    padded = np.pad(np.asarray(mask, bool), 1)
    straight = np.count_nonzero(padded[1:] != padded[:-1]) + np.count_nonzero(padded[:, 1:] != padded[:, :-1])
    diagonal = (np.count_nonzero(padded[1:, 1:] != padded[:-1, :-1])
                + np.count_nonzero(padded[1:, :-1] != padded[:-1, 1:]))
    return float(np.pi / 8 * (straight + diagonal / np.sqrt(2)))


def compactness(mask: np.ndarray) -> float:
    """perimeter^2 / (4 pi area): 1 for a disc (never below, by the isoperimetric inequality)."""
    area = float(np.count_nonzero(mask))
    return max(1.0, perimeter(mask) ** 2 / (4 * np.pi * area)) if area else 0.0


def diameter(mask: np.ndarray) -> float:
    """The largest distance between two boundary pixel centres of the mask."""
    from scipy.spatial import ConvexHull, QhullError

    boundary = mask & ~ndimage.binary_erosion(mask)
    points = np.argwhere(boundary).astype(np.float64)
    if len(points) < 2:
        return 0.0
    try:
        points = points[ConvexHull(points).vertices]
    except (QhullError, ValueError):  # too few or all on one line: the ends, first and last in row order
        points = points[[0, -1]]
    gaps = points[:, None, :] - points[None, :, :]
    return float(np.sqrt((gaps ** 2).sum(axis=-1).max()))


def colour_fractions(rgb: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """The fraction of the lesion's pixels nearest to each dermoscopic colour (unassigned ones excluded)."""
    names, references = reference_lab()
    lab = rgb_to_lab(rgb[mask])
    distances = np.linalg.norm(lab[:, None, :] - references[None, :, :], axis=-1)
    nearest = distances.argmin(axis=1)
    assigned = distances[np.arange(len(lab)), nearest] <= MAX_COLOUR_DISTANCE
    skin = surrounding_skin(rgb, mask)
    if skin is not None:
        assigned &= np.linalg.norm(lab - skin, axis=1) > SKIN_DISTANCE
    counts = np.bincount(nearest[assigned], minlength=len(names))
    return {name: float(count / len(lab)) for name, count in zip(names, counts)}


def surrounding_skin(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
    """The median CIELAB colour of a ring just outside the mask, or None where there is no outside."""
    width = max(2, round(max(mask.shape) / 40))
    ring = ndimage.binary_dilation(mask, iterations=2 * width) & ~ndimage.binary_dilation(mask, iterations=width)
    if np.count_nonzero(ring) < 20:
        return None
    return np.median(rgb_to_lab(rgb[ring]), axis=0)


def outline_overlay(rgb: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int] = (0, 255, 0),
                    thickness: int | None = None) -> np.ndarray:
    """A copy of the uint8 image with the mask's boundary drawn in ``colour`` (thicker on large images).

    >>> outline_overlay(np.zeros((8, 8, 3), np.uint8), np.ones((8, 8), bool))[0, 0].tolist()
    [0, 255, 0]
    """
    mask = np.asarray(mask, bool)
    thickness = thickness or max(1, round(max(mask.shape) / 200))
    edge = mask & ~ndimage.binary_erosion(mask, border_value=0)
    if thickness > 1:
        edge = ndimage.binary_dilation(edge, iterations=thickness - 1) & mask
    out = np.array(rgb, np.uint8, copy=True)
    out[edge] = colour
    return out
