"""Class maps to heatmaps to pictures: ReLU, bilinear upsampling, normalisation, a colour table, PNG.

A heatmap is float32 in [0, 1], scaled by its own maximum: 0 is "no evidence for the class", 1 the
strongest evidence in this image. It is not comparable between images and not a probability.
"""

from __future__ import annotations

import base64
import functools
import io

import numpy as np

COLOUR_MAP = "turbo"  # perceptually ordered, dark blue (nothing) to dark red (most); readable over skin


def class_heatmap(class_maps_row: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """One class's (h, w) map -> float32 (height, width) in [0, 1]; a map with no positive value stays 0.

    >>> class_heatmap(np.array([[0.0, 2.0], [-1.0, 1.0]]), (4, 4)).max()
    np.float32(1.0)
    """
    positive = np.maximum(np.asarray(class_maps_row, np.float32), 0.0)
    heat = upsample_bilinear(positive, size)
    top = float(heat.max()) if heat.size else 0.0
    return heat / top if top > 0 else np.zeros(size, np.float32)


def upsample_bilinear(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w) -> float32 (height, width) with pixel-centre alignment, the same as torch's
    ``interpolate(mode="bilinear", align_corners=False)``, so both Grad-CAM paths agree."""
    values = np.asarray(values, np.float32)
    rows, row_weights = _taps(values.shape[0], size[0])
    cols, col_weights = _taps(values.shape[1], size[1])
    along_rows = values[rows[0]] * (1 - row_weights)[:, None] + values[rows[1]] * row_weights[:, None]
    return (along_rows[:, cols[0]] * (1 - col_weights) + along_rows[:, cols[1]] * col_weights).astype(np.float32)


def _taps(n_in: int, n_out: int) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    source = np.maximum((np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    low = np.minimum(np.floor(source).astype(np.intp), n_in - 1)
    high = np.minimum(low + 1, n_in - 1)
    return (low, high), (source - low).astype(np.float32)


@functools.lru_cache(maxsize=4)
def _colour_table(name: str) -> np.ndarray:
    import matplotlib  # the colour tables only: pyplot (and a GUI backend) is never imported

    return (matplotlib.colormaps[name](np.linspace(0.0, 1.0, 256))[:, :3] * 255).round().astype(np.uint8)


def colourize(heat: np.ndarray, colour_map: str = COLOUR_MAP) -> np.ndarray:
    """float (H, W) in [0, 1] -> uint8 (H, W, 3) through a matplotlib colour table."""
    index = np.clip(np.nan_to_num(heat) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return _colour_table(colour_map)[index]


def overlay_heatmap(rgb: np.ndarray, heat: np.ndarray, alpha: float = 0.45,
                    colour_map: str = COLOUR_MAP) -> np.ndarray:
    """The heatmap blended over the uint8 (H, W, 3) image it belongs to (same height and width).

    >>> overlay_heatmap(np.zeros((4, 4, 3), np.uint8), np.ones((4, 4))).shape
    (4, 4, 3)
    """
    if heat.shape != rgb.shape[:2]:
        raise ValueError(f"the heatmap is {heat.shape} but the image is {rgb.shape[:2]}")
    blended = (1.0 - alpha) * rgb.astype(np.float32) + alpha * colourize(heat, colour_map).astype(np.float32)
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def to_png(rgb: np.ndarray, compress_level: int = 1) -> bytes:
    """uint8 (H, W, 3) or (H, W) -> PNG file bytes.

    The lightest compression: 5x faster than Pillow's default at 256x192 for 17% more bytes, and a
    result page encodes three images per request.
    """
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, "PNG", compress_level=compress_level)
    return buffer.getvalue()


def png_data_url(rgb: np.ndarray) -> str:
    """uint8 image -> ``data:image/png;base64,...`` for an ``<img src>`` or a JSON field."""
    return "data:image/png;base64," + base64.b64encode(to_png(rgb)).decode("ascii")
