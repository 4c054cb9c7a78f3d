"""CIELAB conversion and the six colours of dermoscopy, for segmentation and the C of ABCD.

Distances in CIELAB (D65) follow perceived colour differences far better than distances in RGB, so
"how different from the surrounding skin" and "which dermoscopic colour is this" are both measured there.
"""

from __future__ import annotations

import functools

import numpy as np

# sRGB (D65) -> CIE XYZ, then XYZ scaled by the D65 white point
_RGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                        [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]])
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])

#: Reference colours of the dermoscopic colour criterion, as sRGB. Published reference values (e.g. the
#: saturated ones of early automatic ABCD work) assume one device's light; these are set for
#: white-balanced images (the predictor's view has Shades-of-Gray colour constancy) and were checked
#: against clusters of lesion pixel colours in HAM10000: in CIELAB, white L 85; red L 42, a 40;
#: light brown L 52, a 16, b 22; dark brown L 30, a 18, b 18; blue-grey L 42, b -8; black L 12.
DERMOSCOPIC_COLOURS: dict[str, tuple[int, int, int]] = {
    "white": (220, 211, 205),
    "red": (162, 68, 81),
    "light brown": (162, 113, 87),
    "dark brown": (104, 59, 44),
    "blue-grey": (98, 98, 112),
    "black": (38, 30, 29),
}


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 (..., 3) sRGB -> float32 (..., 3) CIELAB under D65 (L in [0, 100]).

    >>> rgb_to_lab(np.array([255, 255, 255], np.uint8)).round(1)
    array([100.,   0.,   0.], dtype=float32)
    """
    linear = np.asarray(rgb, np.float32) / 255.0
    linear = np.where(linear <= 0.04045, linear / 12.92, ((linear + 0.055) / 1.055) ** 2.4)
    xyz = linear @ (_RGB_TO_XYZ / _WHITE_D65[:, None]).T.astype(np.float32)
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    lab = np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)
    return lab.astype(np.float32)


@functools.lru_cache(maxsize=1)
def reference_lab() -> tuple[tuple[str, ...], np.ndarray]:
    """The dermoscopic colour names and their CIELAB values, (6, 3); computed once (read-only)."""
    names = tuple(DERMOSCOPIC_COLOURS)
    lab = rgb_to_lab(np.array([DERMOSCOPIC_COLOURS[n] for n in names], np.uint8))
    lab.flags.writeable = False
    return names, lab
