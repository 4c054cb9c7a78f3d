"""Test-time augmentation: a lesion has no up, down, left or right, so average over its flips."""

from __future__ import annotations

import numpy as np


def flip_views(batch: np.ndarray) -> list[np.ndarray]:
    """The (N, C, H, W) images, their mirror images and their 180-degree turn."""
    return [batch, np.ascontiguousarray(batch[..., ::-1]), np.ascontiguousarray(batch[..., ::-1, :]),
            np.ascontiguousarray(batch[..., ::-1, ::-1])]
