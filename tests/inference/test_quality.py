"""Image-quality gates on real HAM10000 images and degraded copies of them."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from dermlens.data.images import load_rgb
from dermlens.data.readers import read_dataset
from dermlens.inference.quality import QualityThresholds, measure_quality, quality_issue

DEFAULTS = QualityThresholds()


@pytest.fixture(scope="module")
def ham_images(ham_dir):
    dataset = read_dataset(ham_dir)
    picks = np.random.default_rng(0).choice(len(dataset), 60, replace=False)
    return [load_rgb(dataset.paths[i]) for i in picks]


def issue_of(rgb: np.ndarray) -> str | None:
    return quality_issue(measure_quality(rgb), DEFAULTS)


def test_real_dermoscopic_images_pass(ham_images):
    assert [issue_of(rgb) for rgb in ham_images] == [None] * len(ham_images)


def test_a_blurred_image_is_blurry(ham_images):
    blurred = [np.asarray(Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(4))) for rgb in ham_images[:10]]
    assert [issue_of(rgb) for rgb in blurred] == ["blurry"] * 10


def test_an_underexposed_image_is_too_dark(ham_images):
    dark = [(rgb * 0.15).astype(np.uint8) for rgb in ham_images[:10]]
    assert [issue_of(rgb) for rgb in dark] == ["too_dark"] * 10


def test_an_overexposed_image_is_too_bright(ham_images):
    bright = [(rgb * 0.15 + 240).clip(0, 255).astype(np.uint8) for rgb in ham_images[:10]]
    assert [issue_of(rgb) for rgb in bright] == ["too_bright"] * 10


def test_a_thumbnail_is_too_small(ham_images):
    thumbnail = np.asarray(Image.fromarray(ham_images[0]).resize((48, 36)))
    assert issue_of(thumbnail) == "too_small"


def test_a_large_phone_sized_copy_is_judged_like_the_original(ham_images):
    big = np.asarray(Image.fromarray(ham_images[1]).resize((4000, 3000), Image.Resampling.BICUBIC))
    assert issue_of(big) is None
    assert measure_quality(big).brightness == pytest.approx(measure_quality(ham_images[1]).brightness, abs=3)


def test_portrait_images_are_measured_in_landscape(ham_images):
    portrait = np.ascontiguousarray(np.rot90(ham_images[2]))
    assert measure_quality(portrait).sharpness == pytest.approx(measure_quality(ham_images[2]).sharpness)


def test_thresholds_round_trip_and_tolerate_missing_keys():
    custom = QualityThresholds(min_side=32, min_sharpness=1.5, min_brightness=20.0, max_brightness=250.0)
    assert QualityThresholds.from_dict(custom.to_dict()) == custom
    assert QualityThresholds.from_dict({"min_side": 10}).min_sharpness == DEFAULTS.min_sharpness
    assert QualityThresholds.from_dict(None) == DEFAULTS
