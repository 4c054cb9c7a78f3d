"""Batched augmentation on uint8 image tensors: geometry and colour in a few tensor operations.

Per-image PIL transforms would cost more CPU than the network on a 2-core machine; one affine grid
sample per batch gives flips, any-angle rotation, zoom (a random resized crop) and shifts at once.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from dermlens.training.config import AugmentConfig


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator) * (high - low) + low


def geometric(images: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Random flip, rotation, zoom and shift of float (N, 3, H, W) images, reflecting at borders."""
    n, _, height, width = images.shape
    angle = _uniform(n, -math.pi, math.pi, generator) if config.rotate else torch.zeros(n)
    zoom = _uniform(n, *config.zoom, generator)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0) if config.flip \
        else torch.ones(n)
    stretch = _uniform(n, 1 - config.aspect, 1 + config.aspect, generator) if config.aspect \
        else torch.ones(n)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.zeros(n, 2, 3)
    # rotation in pixel space expressed in normalised coordinates of a non-square image; the
    # stretch scales the output's x axis against its y axis (an image resized from another shape)
    theta[:, 0, 0] = cos * flip * stretch
    theta[:, 0, 1] = -sin * height / width * stretch
    theta[:, 1, 0] = sin * width / height * flip
    theta[:, 1, 1] = cos
    theta[:, :, 2] = _uniform(2 * n, -config.translate, config.translate, generator).view(n, 2)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def photometric(images: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Random brightness, contrast, saturation and per-channel gain of float images in [0, 1]."""
    n = images.shape[0]

    def factor(strength: float, shape: tuple[int, ...] = (n, 1, 1, 1)) -> torch.Tensor:
        return _uniform(math.prod(shape), 1 - strength, 1 + strength, generator).view(shape)

    images = images * factor(config.brightness)
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    images = (images - mean) * factor(config.contrast) + mean
    grey = images.mean(dim=1, keepdim=True)
    images = (images - grey) * factor(config.saturation) + grey
    images = images * factor(config.channel_gain, (n, 3, 1, 1))
    return images.clamp_(0.0, 1.0)


def low_resolution(images: torch.Tensor, probability: float, generator: torch.Generator) -> torch.Tensor:
    """With the given probability per batch, resample down to 40-90% of the size and back up.

    Other clinics' images arrive smaller, larger or re-compressed; the model should not depend on
    detail that only HAM10000's scanner gives. One factor per batch keeps it a single interpolate.
    """
    if probability <= 0 or torch.rand(1, generator=generator).item() >= probability:
        return images
    height, width = images.shape[-2:]
    factor = float(_uniform(1, 0.4, 0.9, generator))
    small = F.interpolate(images, size=(max(8, round(height * factor)), max(8, round(width * factor))),
                          mode="bilinear", antialias=True, align_corners=False)
    return F.interpolate(small, size=(height, width), mode="bilinear", align_corners=False)


def to_float(batch_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [0, 1], channels-last in memory."""
    return batch_uint8.permute(0, 3, 1, 2).float().div_(255.0).contiguous(
        memory_format=torch.channels_last)


def augment(batch_uint8: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """A training batch: uint8 (N, H, W, 3) -> augmented float (N, 3, H, W) in [0, 1]."""
    images = geometric(to_float(batch_uint8), config, generator)
    images = low_resolution(images, config.low_resolution, generator)
    return photometric(images, config, generator).contiguous(memory_format=torch.channels_last)


class Normalizer(torch.nn.Module):
    """Subtract the mean and divide by the std of the backbone's pretraining."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean) / self.std
