"""Heatmaps from class maps, drawn over the image, as PNG data URLs (numpy, Pillow, a colour table)."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from dermlens.explain import class_heatmap, overlay_heatmap, png_data_url, to_png
from dermlens.explain.heatmap import upsample_bilinear


def test_a_heatmap_is_the_upsampled_positive_part_scaled_to_one():
    maps = np.array([[-3.0, 0.0, 1.0], [2.0, 4.0, -1.0]], np.float32)
    heat = class_heatmap(maps, (40, 60))
    assert heat.shape == (40, 60) and heat.dtype == np.float32
    assert heat.min() >= 0.0 and heat.max() == pytest.approx(1.0)
    row, col = np.unravel_index(np.argmax(heat), heat.shape)
    assert 20 <= row < 40 and 20 <= col < 40  # the strongest cell (4.0) is bottom-middle
    assert heat[:10, :10].max() == 0.0  # negative evidence is no evidence


def test_a_map_without_positive_evidence_stays_zero():
    for maps in (np.zeros((3, 4)), -np.ones((3, 4))):
        heat = class_heatmap(maps, (30, 40))
        assert heat.shape == (30, 40) and not heat.any()


def test_upsampling_is_bilinear_between_pixel_centres():
    ramp = np.array([[0.0, 1.0]], np.float32)
    up = upsample_bilinear(ramp, (1, 4))
    np.testing.assert_allclose(up[0], [0.0, 0.25, 0.75, 1.0])  # centres at 0.25, 0.75 of each source cell
    np.testing.assert_allclose(upsample_bilinear(np.full((3, 5), 2.0), (7, 9)), 2.0)


def test_the_overlay_keeps_the_image_size_and_alpha_blends():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    heat = rng.random((30, 40)).astype(np.float32)
    overlay = overlay_heatmap(rgb, heat)
    assert overlay.shape == rgb.shape and overlay.dtype == np.uint8
    assert np.abs(overlay_heatmap(rgb, heat, alpha=0.0).astype(int) - rgb).max() <= 1
    hot, cold = overlay_heatmap(np.zeros_like(rgb), np.ones((30, 40)), alpha=1.0), \
        overlay_heatmap(np.zeros_like(rgb), np.zeros((30, 40)), alpha=1.0)
    assert hot[..., 0].mean() > hot[..., 2].mean() and cold[..., 2].mean() > cold[..., 0].mean()  # red hot, blue cold
    with pytest.raises(ValueError):
        overlay_heatmap(rgb, heat[:10])


def test_png_data_urls_decode_to_the_same_pixels():
    rgb = np.random.default_rng(1).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    assert to_png(rgb).startswith(b"\x89PNG")
    url = png_data_url(rgb)
    prefix = "data:image/png;base64,"
    assert url.startswith(prefix)
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(url[len(prefix):]))).convert("RGB"))
    assert np.array_equal(decoded, rgb)
