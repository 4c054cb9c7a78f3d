"""The not-skin check: how far an image's backbone features lie from the training images'.

A classifier answers every question with one of its classes, even for a photo of a cat. Its
intermediate features are more honest: dermoscopic images fill a small region of that feature space
(which features: `dermlens.export.taps`). We model that region as a Gaussian whose covariance is a probabilistic PCA (Tipping and Bishop 1999): the top
``n_components`` directions with their own variances, the rest with one shared residual variance. Its
Mahalanobis distance needs only a (features x components) matrix, so the export bakes it into the ONNX
graph as an extra output, ``not_skin_score`` (mean squared standardised distance; about 1 for training
images). The rejection threshold is a high quantile of held-out validation scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FeatureDensity:
    """A PPCA Gaussian over backbone features: mean, principal directions and variances."""

    mean: np.ndarray  # (D,)
    components: np.ndarray  # (D, k), orthonormal columns
    variances: np.ndarray  # (k,)
    residual_variance: float

    @classmethod
    def fit(cls, features: np.ndarray, n_components: int = 16) -> "FeatureDensity":
        """Fit on (N, D) training features.

        >>> rng = np.random.default_rng(0)
        >>> density = FeatureDensity.fit(rng.normal(size=(500, 20)), n_components=5)
        >>> bool(abs(np.median(density.score(rng.normal(size=(500, 20)))) - 1) < 0.2)
        True
        """
        features = np.asarray(features, np.float64)
        n, dims = features.shape
        k = max(1, min(n_components, dims - 1, n - 1))
        mean = features.mean(axis=0)
        centred = features - mean
        _, singular, vt = np.linalg.svd(centred, full_matrices=False)
        eigen = singular ** 2 / max(n - 1, 1)
        floor = max(float(eigen[0]) * 1e-6, 1e-8)
        residual = max(float(eigen[k:].sum()) / max(dims - k, 1), floor)
        return cls(mean.astype(np.float32), vt[:k].T.astype(np.float32),
                   np.maximum(eigen[:k], floor).astype(np.float32), residual)

    def score(self, features: np.ndarray) -> np.ndarray:
        """Mean squared standardised distance per row: ~1 in distribution, large far from it."""
        centred = np.asarray(features, np.float64) - self.mean
        projected = centred @ self.components
        residual = np.maximum((centred ** 2).sum(axis=1) - (projected ** 2).sum(axis=1), 0.0)
        distance = (projected ** 2 / self.variances).sum(axis=1) + residual / self.residual_variance
        return distance / self.mean.shape[0]


def rejection_threshold(held_out_scores: np.ndarray, max_reject_rate: float = 0.01) -> float:
    """The score above which at most ``max_reject_rate`` of held-out in-distribution images fall."""
    return float(np.quantile(np.asarray(held_out_scores, np.float64), 1.0 - max_reject_rate))
