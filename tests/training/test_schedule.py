"""Class weights, per-epoch sample orders (with oversampling and DDP shards) and learning-rate schedules."""

from __future__ import annotations

import numpy as np
import pytest

from dermlens.training.schedule import class_weights, epoch_order, lr_factor

#: a HAM10000-like imbalance: one large class, a middle one, a rare one
IMBALANCED = np.repeat([0, 1, 2], [900, 90, 10])


def test_no_weighting_is_all_ones():
    np.testing.assert_array_equal(class_weights(IMBALANCED, 3, "none"), np.ones(3))


def test_balanced_weights_are_inverse_frequency_with_mean_one_over_images():
    weights = class_weights(IMBALANCED, 3, "balanced")
    counts = np.array([900, 90, 10])
    assert weights[IMBALANCED].mean() == pytest.approx(1.0)
    # each class contributes the same total weight
    np.testing.assert_allclose(weights * counts, np.full(3, counts.sum() / 3))
    assert weights[2] / weights[0] == pytest.approx(90.0)


def test_sqrt_weights_are_the_square_root_of_balanced_up_to_scale():
    weights = class_weights(IMBALANCED, 3, "sqrt")
    assert weights[IMBALANCED].mean() == pytest.approx(1.0)
    assert weights[2] / weights[0] == pytest.approx(np.sqrt(90.0))
    assert weights[0] < weights[1] < weights[2]


def test_absent_class_gets_zero_weight_and_mean_stays_one():
    targets = np.array([0, 0, 0, 2, 2, 3])  # class 1 and 4 have no image
    weights = class_weights(targets, 5, "balanced")
    assert weights[1] == 0 and weights[4] == 0
    assert weights[targets].mean() == pytest.approx(1.0)
    assert np.isfinite(weights).all()


def test_epoch_order_is_a_deterministic_permutation_without_sampling():
    order = epoch_order(IMBALANCED, "none", seed=0, epoch=1)
    assert sorted(order.tolist()) == list(range(len(IMBALANCED)))
    np.testing.assert_array_equal(order, epoch_order(IMBALANCED, "none", seed=0, epoch=1))
    assert not np.array_equal(order, epoch_order(IMBALANCED, "none", seed=0, epoch=2))
    assert not np.array_equal(order, epoch_order(IMBALANCED, "none", seed=1, epoch=1))
    assert not np.array_equal(order, np.arange(len(IMBALANCED)))


def test_balanced_oversampling_makes_classes_about_equally_frequent():
    order = epoch_order(IMBALANCED, "balanced", seed=0, epoch=1)
    assert len(order) == len(IMBALANCED)
    np.testing.assert_array_equal(order, epoch_order(IMBALANCED, "balanced", seed=0, epoch=1))
    share = np.bincount(IMBALANCED[order], minlength=3) / len(order)
    np.testing.assert_allclose(share, np.full(3, 1 / 3), atol=0.06)
    # the rare class is drawn with replacement: its 10 images appear many times each
    assert np.bincount(order[IMBALANCED[order] == 2]).max() > 10


def test_sqrt_oversampling_lies_between_none_and_balanced():
    share = np.bincount(IMBALANCED[epoch_order(IMBALANCED, "sqrt", seed=0, epoch=1)], minlength=3) / 1000
    # expected shares are proportional to sqrt(count): 30 : 9.5 : 3
    expected = np.sqrt([900, 90, 10]) / np.sqrt([900, 90, 10]).sum()
    np.testing.assert_allclose(share, expected, atol=0.05)
    assert 0.01 < share[2] < 1 / 3


@pytest.mark.parametrize("n", [1000, 999])
def test_ddp_shards_are_disjoint_and_equal_length(n):
    targets = IMBALANCED[:n]
    full = epoch_order(targets, "none", seed=5, epoch=3)
    shards = [epoch_order(targets, "none", seed=5, epoch=3, rank=r, world_size=2) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == n // 2
    assert not set(shards[0].tolist()) & set(shards[1].tolist())
    # both ranks drew the same order and took alternate items of it
    interleaved = np.empty(2 * (n // 2), dtype=full.dtype)
    interleaved[0::2], interleaved[1::2] = shards
    np.testing.assert_array_equal(interleaved, full[:2 * (n // 2)])


def test_ddp_shards_with_oversampling_have_equal_length_and_share_the_draw():
    full = epoch_order(IMBALANCED, "balanced", seed=5, epoch=3)
    shards = [epoch_order(IMBALANCED, "balanced", seed=5, epoch=3, rank=r, world_size=2) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 500
    np.testing.assert_array_equal(shards[0], full[0::2])
    np.testing.assert_array_equal(shards[1], full[1::2])


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_warmup_rises_linearly_to_one(schedule):
    assert lr_factor(0, 1000, 100, schedule) == pytest.approx(0.01)
    assert lr_factor(49, 1000, 100, schedule) == pytest.approx(0.5)
    assert lr_factor(99, 1000, 100, schedule) == pytest.approx(1.0)
    assert lr_factor(100, 1000, 100, schedule) == pytest.approx(1.0)
    warmup = [lr_factor(s, 1000, 100, schedule) for s in range(100)]
    assert all(a < b for a, b in zip(warmup, warmup[1:]))


def test_cosine_decays_to_zero_at_the_end():
    assert lr_factor(550, 1000, 100, "cosine") == pytest.approx(0.5)
    assert lr_factor(1000, 1000, 100, "cosine") == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(5000, 1000, 100, "cosine") == pytest.approx(0.0, abs=1e-12)  # never rises again
    decay = [lr_factor(s, 1000, 100, "cosine") for s in range(100, 1001)]
    assert all(a >= b for a, b in zip(decay, decay[1:]))


def test_cosine_without_warmup_starts_at_one():
    assert lr_factor(0, 200, 0, "cosine") == pytest.approx(1.0)
    assert lr_factor(200, 200, 0, "cosine") == pytest.approx(0.0, abs=1e-12)


def test_constant_stays_at_one_after_warmup():
    assert [lr_factor(s, 1000, 10, "constant") for s in (10, 500, 1000)] == [1.0, 1.0, 1.0]


def test_onecycle_rises_to_a_peak_at_30_percent_then_decays_to_zero():
    factors = [lr_factor(s, 1000, 100, "onecycle") for s in range(1001)]
    assert factors[0] == pytest.approx(0.04)
    assert int(np.argmax(factors)) == 300 and factors[300] == pytest.approx(1.0)
    assert factors[1000] == pytest.approx(0.0, abs=1e-12)
    assert all(0.0 <= f <= 1.0 for f in factors)
