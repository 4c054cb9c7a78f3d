"""When to say "uncertain, see a dermatologist" instead of naming a class.

The threshold on the top probability is chosen on validation data: the lowest confidence at which the
answers the model would still give are right at least ``target_accuracy`` of the time. The model card
records the threshold, that accuracy and the share of images answered (coverage).
"""

from __future__ import annotations

import numpy as np


def confidence_threshold(probabilities: np.ndarray, y_true: np.ndarray,
                         target_accuracy: float = 0.9) -> dict:
    """Smallest top-probability threshold whose accepted validation answers reach ``target_accuracy``.

    >>> p = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.55, 0.45]])
    >>> confidence_threshold(p, np.array([0, 0, 1, 1]), 0.9)["threshold"]
    0.8
    """
    probabilities = np.asarray(probabilities, np.float64)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(y_true)
    order = np.argsort(-confidence, kind="stable")
    accepted_accuracy = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    reaching = np.nonzero(accepted_accuracy >= target_accuracy)[0]
    if len(reaching) == 0:  # never accurate enough: answer only the single most confident case
        last = 0
    else:
        last = int(reaching[-1])
    threshold = float(confidence[order[last]])
    accepted = confidence >= threshold
    return {"threshold": threshold, "target_accuracy": target_accuracy,
            "accuracy_when_answered": float(correct[accepted].mean()),
            "coverage": float(accepted.mean()), "n_validation": int(len(confidence))}
