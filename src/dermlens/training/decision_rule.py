"""Choosing a model's decision rule on validation data: which class to name for given logits.

The decision is ``argmax(logits + bias)`` (`dermlens.inference.decision`). Two ways to choose the
bias, both aimed at balanced accuracy, the ISIC metric:

- ``prior``: one number for all classes, ``bias = -tau * log(training prior)`` with tau from a short
  list (post-hoc logit adjustment, Menon et al. 2021);
- ``per_class``: that bias, then each class's entry moved on its own by coordinate ascent on
  validation balanced accuracy. One shared tau over-corrects some classes and under-corrects others
  (on HAM10000 dermatofibroma and vascular lesions are easy, melanoma and keratoses are not).

Every shift is chosen from a fixed grid, and where several shifts score the same the middle of that
plateau is taken, so a shift is not pushed to the edge of what the few validation images of a rare
class happen to allow.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

DecisionRule = Literal["prior", "per_class"]

#: the prior-correction strengths tried (0 = the plain most probable class)
PRIOR_TAUS = (0.0, 0.25, 0.5, 0.75, 1.0)
#: the shifts tried for one class, in units of calibrated logits (log-probability)
CLASS_SHIFTS = np.round(np.linspace(-2.0, 2.0, 41), 3)


def balanced_accuracy_of(targets: np.ndarray, decisions: np.ndarray, n_classes: int) -> float:
    """Mean recall over the classes present in ``targets`` (fast: no input checks)."""
    hits = np.bincount(targets, weights=(decisions == targets), minlength=n_classes)
    counts = np.bincount(targets, minlength=n_classes)
    present = counts > 0
    return float(np.mean(hits[present] / counts[present]))


def log_class_prior(targets: np.ndarray, n_classes: int) -> np.ndarray:
    """Log of the class frequencies in ``targets`` (a class with no image counts as one).

    >>> np.exp(log_class_prior(np.array([0, 0, 0, 1]), 2)).tolist()
    [0.75, 0.25]
    """
    counts = np.bincount(np.asarray(targets, np.int64), minlength=n_classes)
    return np.log(np.maximum(counts, 1) / max(counts.sum(), 1))


def best_prior_tau(logits: np.ndarray, targets: np.ndarray, log_prior: np.ndarray) -> float:
    """The `PRIOR_TAUS` strength whose decisions score the best balanced accuracy (the smallest on a tie).

    >>> best_prior_tau(np.array([[2.0, 0.5], [1.0, 0.8]]), np.array([0, 1]), np.log([0.9, 0.1]))
    0.25
    """
    from dermlens.inference.decision import decide, decision_bias

    targets = np.asarray(targets, np.int64)
    n_classes = np.asarray(logits).shape[1]
    best_tau, best_score = 0.0, -1.0
    for tau in PRIOR_TAUS:
        score = balanced_accuracy_of(targets, decide(logits, decision_bias(log_prior, tau)), n_classes)
        if score > best_score + 1e-9:
            best_tau, best_score = tau, score
    return best_tau


def refine_decision_bias(logits: np.ndarray, targets: np.ndarray, start: np.ndarray | None = None,
                         *, sweeps: int = 3) -> np.ndarray:
    """Per-class decision bias: ``start`` moved class by class to raise balanced accuracy on
    (``logits``, ``targets``), each class's shift from `CLASS_SHIFTS` around its start.

    Pass calibrated logits (divided by the temperature) so the grid means the same for every model.

    >>> logits = np.array([[2.0, 0.0], [1.0, 0.5], [1.5, 0.0], [0.2, 1.0]])
    >>> targets = np.array([0, 1, 0, 1])
    >>> bias = refine_decision_bias(logits, targets)
    >>> (logits + bias).argmax(axis=1).tolist()
    [0, 1, 0, 1]
    """
    logits = np.asarray(logits, np.float64)
    targets = np.asarray(targets, np.int64)
    n_classes = logits.shape[1]
    start = np.zeros(n_classes) if start is None else np.asarray(start, np.float64)
    bias = start.copy()
    for _ in range(sweeps):
        before = bias.copy()
        for k in range(n_classes):
            scores = np.empty(len(CLASS_SHIFTS))
            for i, shift in enumerate(CLASS_SHIFTS):
                bias[k] = start[k] + shift
                scores[i] = balanced_accuracy_of(targets, (logits + bias).argmax(axis=1), n_classes)
            current = int(np.argmin(np.abs(CLASS_SHIFTS - (before[k] - start[k]))))
            bias[k] = start[k] + CLASS_SHIFTS[_plateau_middle(scores, current)]
        if np.array_equal(bias, before):
            break
    return bias


def _plateau_middle(scores: np.ndarray, current: int) -> int:
    """Index of the middle of the run of best scores nearest to ``current``."""
    best = np.flatnonzero(scores >= scores.max() - 1e-12)
    nearest = int(best[np.argmin(np.abs(best - current))])
    low = high = nearest
    while low - 1 >= 0 and scores[low - 1] >= scores.max() - 1e-12:
        low -= 1
    while high + 1 < len(scores) and scores[high + 1] >= scores.max() - 1e-12:
        high += 1
    return (low + high) // 2
