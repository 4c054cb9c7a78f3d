"""Batched augmentation on uint8 image tensors, and the normaliser shared with serving."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dermlens.data.images import Preprocessing
from dermlens.training.augment import Normalizer, augment, geometric, low_resolution, to_float
from dermlens.training.config import AugmentConfig

NOTHING = AugmentConfig(flip=False, rotate=False, zoom=(1.0, 1.0), translate=0.0, brightness=0.0,
                        contrast=0.0, saturation=0.0, channel_gain=0.0)


@pytest.fixture
def batch() -> torch.Tensor:
    """Four 30x40 uint8 RGB images: smooth gradients plus noise, so any movement shows."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:30, 0:40]
    base = np.stack([x * 6, y * 8, (x + y) * 3], axis=-1).astype(np.float64)
    images = base[None] + rng.integers(0, 20, size=(4, 30, 40, 3))
    return torch.from_numpy(np.clip(images, 0, 255).astype(np.uint8))


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_to_float_is_channels_first_in_unit_range(batch):
    images = to_float(batch)
    assert images.shape == (4, 3, 30, 40) and images.dtype == torch.float32
    torch.testing.assert_close(images[1, 2], batch[1, :, :, 2].float() / 255)


def test_augment_keeps_shape_and_range(batch):
    out = augment(batch, AugmentConfig(), generator())
    assert out.shape == (4, 3, 30, 40) and out.dtype == torch.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert torch.isfinite(out).all()


def test_strong_colour_changes_stay_in_range(batch):
    config = AugmentConfig(brightness=0.9, contrast=0.9, saturation=0.9, channel_gain=0.5)
    out = augment(batch, config, generator(3))
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_same_seed_same_output_other_seed_other_output(batch):
    config = AugmentConfig()
    first = augment(batch, config, generator(7))
    torch.testing.assert_close(augment(batch, config, generator(7)), first, rtol=0, atol=0)
    assert not torch.allclose(augment(batch, config, generator(8)), first, atol=1e-3)


def test_images_of_a_batch_get_different_augmentations(batch):
    same = batch[:1].repeat(4, 1, 1, 1)
    out = augment(same, AugmentConfig(), generator(1))
    assert not torch.allclose(out[0], out[1], atol=1e-3)


def test_rotation_moves_pixels(batch):
    config = AugmentConfig(flip=False, rotate=True, zoom=(1.0, 1.0), translate=0.0, brightness=0.0,
                           contrast=0.0, saturation=0.0, channel_gain=0.0)
    out = augment(batch, config, generator(2))
    assert (out - to_float(batch)).abs().mean() > 0.02


def test_rotation_of_a_non_square_image_keeps_a_disc_round_and_centred():
    # rotating in normalised coordinates of a 60x80 image would squash a disc into an ellipse
    y, x = np.mgrid[0:60, 0:80]
    disc = ((y - 29.5) ** 2 + (x - 39.5) ** 2 < 12 ** 2).astype(np.uint8) * 255
    images = torch.from_numpy(np.repeat(disc[None, :, :, None], 3, axis=-1)).repeat(16, 1, 1, 1)
    config = AugmentConfig(flip=False, rotate=True, zoom=(1.0, 1.0), translate=0.0)
    out = geometric(to_float(images), config, generator(5))[:, 0].numpy()
    # near the corners, reflection padding brings copies of the disc in; look within radius 20,
    # which a rotation about the centre maps onto itself
    central = (y - 29.5) ** 2 + (x - 39.5) ** 2 < 20 ** 2
    for rotated in out:
        rows, cols = np.nonzero((rotated > 0.5) & central)
        assert len(rows) == pytest.approx(disc.astype(bool).sum(), rel=0.05)
        assert (rows.mean(), cols.mean()) == pytest.approx((29.5, 39.5), abs=0.5)
        eigenvalues = np.linalg.eigvalsh(np.cov(np.stack([rows, cols])))
        assert eigenvalues.max() / eigenvalues.min() < 1.1


def test_no_augmentation_returns_the_input(batch):
    out = augment(batch, NOTHING, generator())
    torch.testing.assert_close(out, to_float(batch), rtol=0, atol=1e-5)


def test_flip_only_gives_the_image_or_its_mirror(batch):
    config = AugmentConfig(flip=True, rotate=False, zoom=(1.0, 1.0), translate=0.0)
    images = to_float(batch.repeat(4, 1, 1, 1))  # 16 images: both outcomes appear
    out = geometric(images, config, generator(4))
    flipped = []
    for original, result in zip(images, out):
        if torch.allclose(result, original, atol=1e-5):
            flipped.append(False)
        else:
            torch.testing.assert_close(result, original.flip(-1), rtol=0, atol=1e-5)
            flipped.append(True)
    assert any(flipped) and not all(flipped)


def test_zoom_in_enlarges_the_centre():
    # a 21x21 white square in the middle of a black 60x80 image covers more pixels after zooming in
    image = torch.zeros(1, 60, 80, 3, dtype=torch.uint8)
    image[0, 20:41, 30:51] = 255
    config = AugmentConfig(flip=False, rotate=False, zoom=(2.0, 2.0), translate=0.0)
    out = geometric(to_float(image), config, generator())
    assert (out > 0.5).sum() / 3 == pytest.approx(4 * 21 * 21, rel=0.15)


def test_aspect_stretch_changes_width_not_height():
    # a centred 20x20 square: stretching the x axis changes its width, never its height
    image = torch.zeros(1, 60, 80, 3, dtype=torch.uint8)
    image[0, 20:40, 30:50] = 255
    config = AugmentConfig(flip=False, rotate=False, zoom=(1.0, 1.0), translate=0.0, aspect=0.3)
    widths, heights = set(), set()
    for seed in range(6):
        mask = geometric(to_float(image), config, generator(seed))[0, 0] > 0.5
        widths.add(int(mask.any(dim=0).sum()))
        heights.add(int(mask.any(dim=1).sum()))
    assert heights == {20}
    assert len(widths) > 1 and min(widths) >= 14 and max(widths) <= 30


def test_low_resolution_blurs_detail_but_keeps_the_picture(batch):
    images = to_float(batch)
    always = low_resolution(images, 1.0, generator())
    never = low_resolution(images, 0.0, generator())
    assert always.shape == images.shape
    torch.testing.assert_close(never, images)
    # fine noise is smoothed away (lower high-frequency energy); the mean colour stays
    def detail(x):
        return (x[..., 1:] - x[..., :-1]).abs().mean()
    assert detail(always) < 0.8 * detail(images)
    torch.testing.assert_close(always.mean(dim=(2, 3)), images.mean(dim=(2, 3)), rtol=0, atol=0.03)


def test_normalizer_matches_serving_preprocessing(batch):
    """Training normalises in torch, serving in numpy: both must give the same model input."""
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    training = Normalizer(mean, std)(to_float(batch)).numpy()
    serving = Preprocessing(height=30, width=40, mean=mean, std=std).normalize(batch.numpy())
    np.testing.assert_allclose(training, serving, rtol=0, atol=1e-5)
