"""ABCD features on shapes and colours whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from dermlens.segmentation import abcd_features, outline_overlay
from dermlens.segmentation.abcd import asymmetry_by_axis, compactness, diameter
from dermlens.segmentation.colour import DERMOSCOPIC_COLOURS

SKIN = (214, 170, 150)


def disc(radius: float, size: int = 160, centre: tuple[float, float] | None = None) -> np.ndarray:
    cy, cx = centre or (size / 2, size / 2)
    rows, cols = np.mgrid[:size, :size]
    return (rows - cy) ** 2 + (cols - cx) ** 2 <= radius ** 2


def star(size: int = 160, points: int = 7, inner: float = 25, outer: float = 60) -> np.ndarray:
    rows, cols = np.mgrid[:size, :size] - size / 2
    angle = np.arctan2(rows, cols)
    radius = inner + (outer - inner) * (0.5 + 0.5 * np.cos(points * angle)) ** 3
    return np.hypot(rows, cols) <= radius


def coloured(mask: np.ndarray, colours: list[tuple[int, int, int]], seed: int = 0) -> np.ndarray:
    """Skin with the lesion split into vertical bands, one per colour, with a little noise."""
    rng = np.random.default_rng(seed)
    rgb = np.clip(np.array(SKIN, float) + rng.normal(0, 4, (*mask.shape, 3)), 0, 255)
    cols = np.nonzero(mask)[1]
    edges = np.linspace(cols.min(), cols.max() + 1, len(colours) + 1)
    for colour, low, high in zip(colours, edges[:-1], edges[1:]):
        band = mask.copy()
        band[:, : int(low)] = False
        band[:, int(high):] = False
        rgb[band] = np.clip(np.array(colour, float) + rng.normal(0, 4, (int(band.sum()), 3)), 0, 255)
    return rgb.astype(np.uint8)


def test_a_disc_is_symmetric_compact_and_two_radii_across():
    for radius in (20, 45):
        mask = disc(radius)
        features = abcd_features(coloured(mask, [DERMOSCOPIC_COLOURS["dark brown"]]), mask)
        assert features.asymmetry < 0.03
        assert features.border_irregularity == pytest.approx(1.0, abs=0.06)
        assert features.diameter_px == pytest.approx(2 * radius, abs=1.5)
        assert features.area_px == int(mask.sum()) == pytest.approx(np.pi * radius ** 2, rel=0.05)


def test_an_ellipse_at_an_angle_is_symmetric_about_its_own_axes():
    rows, cols = np.mgrid[:160, :160] - 80.0
    u, v = cols * np.cos(0.6) + rows * np.sin(0.6), -cols * np.sin(0.6) + rows * np.cos(0.6)
    mask = (u / 60) ** 2 + (v / 30) ** 2 <= 1
    assert max(asymmetry_by_axis(mask)) < 0.05
    assert compactness(mask) > 1.1  # elongated: less compact than a disc
    assert diameter(mask) == pytest.approx(120, abs=2)


def test_irregular_and_lopsided_shapes_score_higher():
    round_mask = disc(40)
    ragged = star()
    lopsided = disc(40) | disc(22, centre=(80, 130)) | disc(12, centre=(40, 60))
    assert compactness(ragged) > 1.5 > compactness(round_mask)
    assert abcd_features(coloured(ragged, [(110, 60, 45)]), ragged).border_irregularity > 1.5
    assert asymmetry_by_axis(lopsided)[0] > 0.1 or asymmetry_by_axis(lopsided)[1] > 0.1
    assert np.mean(asymmetry_by_axis(lopsided)) > np.mean(asymmetry_by_axis(round_mask)) + 0.05


@pytest.mark.parametrize("names", [["dark brown"], ["dark brown", "blue-grey"], ["light brown", "black"],
                                   ["red", "dark brown", "white"]])
def test_colours_are_counted_by_nearest_dermoscopic_colour(names):
    mask = disc(50)
    features = abcd_features(coloured(mask, [DERMOSCOPIC_COLOURS[n] for n in names]), mask)
    assert features.colour_count == len(names)
    assert set(features.colours) == set(names)
    assert sum(features.colour_fractions.values()) <= 1.0 + 1e-9


def test_skin_coloured_pixels_inside_the_outline_are_no_lesion_colour():
    mask = disc(50)
    rgb = coloured(mask, [SKIN, DERMOSCOPIC_COLOURS["dark brown"]])
    features = abcd_features(rgb, mask)
    assert features.colours == ("dark brown",)


def test_features_serialise_and_bad_input_is_refused():
    mask = disc(30)
    values = abcd_features(coloured(mask, [DERMOSCOPIC_COLOURS["dark brown"]]), mask).to_dict()
    assert {"asymmetry", "border_irregularity", "colour_count", "colours", "diameter_px", "area_px"} <= set(values)
    with pytest.raises(ValueError):
        abcd_features(np.zeros((10, 10, 3), np.uint8), np.zeros((10, 10), bool))
    with pytest.raises(ValueError):
        abcd_features(np.zeros((10, 10, 3), np.uint8), np.ones((12, 10), bool))


def test_the_outline_is_drawn_on_the_boundary_only():
    mask = disc(30, size=100)
    rgb = np.full((100, 100, 3), 90, np.uint8)
    drawn = outline_overlay(rgb, mask, colour=(0, 255, 0))
    changed = (drawn != rgb).any(axis=-1)
    assert changed.any() and (changed <= mask).all()
    assert not changed[50, 50]  # the inside is untouched
    assert (drawn[changed] == (0, 255, 0)).all()
    assert np.array_equal(rgb, np.full((100, 100, 3), 90, np.uint8))  # the input is not modified
