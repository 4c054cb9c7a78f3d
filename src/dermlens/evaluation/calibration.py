"""How far a model's confidence can be trusted: reliability curve and expected calibration error.

Both use the top label (the most probable class and its probability) and equal-width confidence bins
that include their upper edge, as in Guo et al., "On Calibration of Modern Neural Networks" (2017).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from dermlens.evaluation.metrics import check_predictions


def reliability_curve(
    y_true: ArrayLike, probabilities: ArrayLike, n_bins: int = 15
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean confidence, accuracy and image count in each of ``n_bins`` equal-width confidence bins.

    Bin ``i`` holds confidences in ``(i / n_bins, (i + 1) / n_bins]`` (the first bin also holds 0).
    Empty bins have count 0 and NaN confidence and accuracy, so the arrays always have ``n_bins``
    entries and line up with the bin edges.

    >>> confidence, accuracy, count = reliability_curve([0, 1, 1], [[0.9, 0.1], [0.8, 0.2], [0.4, 0.6]], 2)
    >>> count.tolist(), accuracy.tolist()
    ([0, 3], [nan, 0.6666666666666666])
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    labels, probs = check_predictions(y_true, probabilities)
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    inner_edges = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    bin_index = np.searchsorted(inner_edges, confidence, side="left")
    count = np.bincount(bin_index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        bin_confidence = np.bincount(bin_index, weights=confidence, minlength=n_bins) / count
        bin_accuracy = np.bincount(bin_index, weights=correct, minlength=n_bins) / count
    return bin_confidence, bin_accuracy, count


def calibration_error_from_curve(
    bin_confidence: np.ndarray, bin_accuracy: np.ndarray, bin_count: np.ndarray
) -> float:
    """ECE from a reliability curve: the |accuracy - confidence| gap averaged with bin-size weights.

    >>> calibration_error_from_curve(np.array([0.4, 0.9]), np.array([0.0, 1.0]), np.array([2, 2]))
    0.25
    """
    filled = bin_count > 0
    weights = bin_count[filled] / bin_count.sum()
    return float(np.sum(weights * np.abs(bin_accuracy[filled] - bin_confidence[filled])))


def expected_calibration_error(y_true: ArrayLike, probabilities: ArrayLike, n_bins: int = 15) -> float:
    """Top-label expected calibration error (ECE) over equal-width bins; 0 is perfectly calibrated.

    A model that says "90 % melanoma" should be right about 90 % of the time; ECE is the average
    distance from that, weighted by how many images fall at each confidence level.

    >>> probabilities = [[0.55, 0.45], [0.55, 0.45], [0.85, 0.15], [0.85, 0.15]]
    >>> round(expected_calibration_error([0, 0, 1, 1], probabilities, n_bins=10), 4)  # (0.45 + 0.85) / 2
    0.65
    """
    return calibration_error_from_curve(*reliability_curve(y_true, probabilities, n_bins))
