"""Test-time augmentation views: four distinct flips that undo themselves."""

from __future__ import annotations

import numpy as np

from dermlens.inference.tta import flip_views


def test_flip_views_are_the_four_flips_of_the_batch():
    batch = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    views = flip_views(batch)
    assert len(views) == 4
    assert np.array_equal(views[0], batch)
    assert np.array_equal(views[1], batch[:, :, :, ::-1])
    assert np.array_equal(views[2], batch[:, :, ::-1, :])
    assert np.array_equal(views[3], np.rot90(batch, 2, axes=(2, 3)))
    # all four differ from each other, and each flip applied twice is the identity
    flat = {v.tobytes() for v in views}
    assert len(flat) == 4
    for view in views[1:]:
        assert {w.tobytes() for w in flip_views(view)} == flat
