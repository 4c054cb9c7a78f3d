"""Expected calibration error and reliability bins."""

import numpy as np
import pytest

from dermlens.evaluation import expected_calibration_error, reliability_curve


def _binary_probabilities(confidence: np.ndarray) -> np.ndarray:
    """Two-class rows predicting class 0 with the given confidence."""
    return np.column_stack([confidence, 1.0 - confidence])


def test_ece_is_zero_when_accuracy_equals_confidence_exactly():
    # Ten images at 80 % confidence, eight of them right.
    probabilities = _binary_probabilities(np.full(10, 0.8))
    y_true = np.array([0] * 8 + [1] * 2)
    assert expected_calibration_error(y_true, probabilities) == pytest.approx(0.0, abs=1e-12)


def test_ece_is_near_zero_for_a_calibrated_synthetic_model():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.5, 1.0, size=50_000)
    correct = rng.uniform(size=confidence.size) < confidence  # right with probability = confidence
    y_true = np.where(correct, 0, 1)
    assert expected_calibration_error(y_true, _binary_probabilities(confidence)) < 0.015


def test_ece_is_large_for_an_overconfident_model():
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 2, size=2_000)  # a coin flip, predicted with 99 % confidence
    ece = expected_calibration_error(y_true, _binary_probabilities(np.full(y_true.size, 0.99)))
    assert ece == pytest.approx(0.49, abs=0.03)


def test_ece_hand_computed_over_two_bins():
    # Four classes so a top-label confidence can be below 0.5.
    probabilities = np.array([
        [0.4, 0.2, 0.2, 0.2],  # bin 0, wrong
        [0.4, 0.2, 0.2, 0.2],  # bin 0, wrong
        [0.9, 0.05, 0.03, 0.02],  # bin 1, right
        [0.9, 0.05, 0.03, 0.02],  # bin 1, right
    ])
    y_true = np.array([1, 2, 0, 0])
    # Gaps: |0 - 0.4| and |1 - 0.9|, each bin holding half the images.
    assert expected_calibration_error(y_true, probabilities, n_bins=2) == pytest.approx(0.5 * 0.4 + 0.5 * 0.1)


def test_reliability_curve_bins():
    confidence = np.array([0.55, 0.65, 0.68, 0.95, 1.0])
    y_true = np.array([0, 1, 0, 0, 0])
    bin_confidence, bin_accuracy, bin_count = reliability_curve(y_true, _binary_probabilities(confidence), n_bins=5)
    assert bin_count.tolist() == [0, 0, 1, 2, 2]
    assert np.isnan(bin_confidence[:2]).all() and np.isnan(bin_accuracy[:2]).all()
    np.testing.assert_allclose(bin_confidence[2:], [0.55, 0.665, 0.975])
    np.testing.assert_allclose(bin_accuracy[2:], [1.0, 0.5, 1.0])
    assert bin_count.sum() == len(y_true)


def test_reliability_bins_include_their_upper_edge():
    probabilities = _binary_probabilities(np.array([0.5, 1.0]))
    _, _, bin_count = reliability_curve([0, 0], probabilities, n_bins=2)
    assert bin_count.tolist() == [1, 1]  # 0.5 belongs to (0, 0.5], 1.0 to (0.5, 1]


def test_reliability_curve_rejects_zero_bins():
    with pytest.raises(ValueError, match="n_bins"):
        reliability_curve([0], [[0.6, 0.4]], n_bins=0)
