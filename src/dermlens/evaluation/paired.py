"""Is recipe B better than recipe A, or is the difference noise? A paired bootstrap on one test set.

Both models answered the same test images. Resampling the images with replacement (the same resample
for both) and recomputing each score gives the spread of the *difference*; a 95% interval that excludes
zero means the test set is large enough to tell the two apart (Efron & Tibshirani, 1993, ch. 16).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.stats import rankdata

PairedMetric = Literal["balanced_accuracy", "accuracy", "macro_auc"]
PAIRED_METRICS: tuple[PairedMetric, ...] = ("balanced_accuracy", "accuracy", "macro_auc")


@dataclass(frozen=True)
class PairedDifference:
    metric: PairedMetric
    score_a: float
    score_b: float
    low: float  # the interval of score_b - score_a
    high: float
    n_resamples: int
    confidence: float

    @property
    def difference(self) -> float:
        return self.score_b - self.score_a

    @property
    def significant(self) -> bool:
        """True when the interval excludes zero."""
        return self.low > 0 or self.high < 0


def _score(metric: PairedMetric, y: np.ndarray, labels: np.ndarray, probabilities: np.ndarray,
           n_classes: int) -> float:
    if metric == "accuracy":
        return float(np.mean(labels == y))
    if metric == "balanced_accuracy":
        support = np.bincount(y, minlength=n_classes)
        hits = np.bincount(y[labels == y], minlength=n_classes)
        present = support > 0
        return float(np.mean(hits[present] / support[present]))
    aucs = []
    for c in range(n_classes):
        positive = y == c
        n_pos = int(positive.sum())
        n_neg = len(y) - n_pos
        if n_pos == 0 or n_neg == 0:
            continue  # a class absent from this resample has no AUC
        ranks = rankdata(probabilities[:, c])
        aucs.append((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    return float(np.mean(aucs)) if aucs else float("nan")


def paired_bootstrap(y_true: np.ndarray, labels_a: np.ndarray, probabilities_a: np.ndarray,
                     labels_b: np.ndarray, probabilities_b: np.ndarray, metric: PairedMetric, *,
                     n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> PairedDifference:
    """The score of A and of B on the same images and a percentile interval of B - A.

    ``labels_*`` are the decided classes (integers), ``probabilities_*`` (n, n_classes).

    >>> y = np.array([0, 0, 1, 1] * 25)
    >>> perfect = np.eye(2)[y]
    >>> coin = np.full((100, 2), 0.5)
    >>> result = paired_bootstrap(y, 1 - y, coin, y, perfect, "accuracy", n_resamples=200)
    >>> result.difference, result.significant
    (1.0, True)
    """
    if metric not in PAIRED_METRICS:
        raise ValueError(f"metric must be one of {PAIRED_METRICS}, got {metric!r}")
    y = np.asarray(y_true, dtype=np.int64)
    n_classes = int(max(np.asarray(probabilities_a).shape[1], y.max() + 1))
    a = (np.asarray(labels_a), np.asarray(probabilities_a, dtype=np.float64))
    b = (np.asarray(labels_b), np.asarray(probabilities_b, dtype=np.float64))
    if not (len(y) == len(a[0]) == len(a[1]) == len(b[0]) == len(b[1])):
        raise ValueError("both models must answer the same images: the lengths differ")
    score_a = _score(metric, y, *a, n_classes)
    score_b = _score(metric, y, *b, n_classes)
    generator = np.random.default_rng(seed)
    differences = np.empty(n_resamples)
    for i in range(n_resamples):
        idx = generator.integers(0, len(y), len(y))
        differences[i] = (_score(metric, y[idx], b[0][idx], b[1][idx], n_classes)
                          - _score(metric, y[idx], a[0][idx], a[1][idx], n_classes))
    tail = (1 - confidence) / 2 * 100
    low, high = np.nanpercentile(differences, [tail, 100 - tail])
    return PairedDifference(metric, score_a, score_b, float(low), float(high), n_resamples, confidence)
