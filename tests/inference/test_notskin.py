"""The feature-density model behind the not-skin check, and the abstention threshold."""

from __future__ import annotations

import numpy as np
import pytest

from dermlens.inference.abstention import confidence_threshold
from dermlens.inference.notskin import FeatureDensity, rejection_threshold


@pytest.fixture(scope="module")
def low_rank_data():
    """Features that live near a 5-dimensional subspace of a 40-dimensional space."""
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(40, 5)))[0]
    def sample(n):
        return rng.normal(size=(n, 5)) * [5, 4, 3, 2, 1] @ basis.T + rng.normal(scale=0.1, size=(n, 40)) + 3
    return sample


def test_in_distribution_scores_are_about_one(low_rank_data):
    density = FeatureDensity.fit(low_rank_data(2000), n_components=5)
    scores = density.score(low_rank_data(500))
    assert 0.8 < np.median(scores) < 1.2


def test_points_off_the_subspace_score_far_higher(low_rank_data):
    density = FeatureDensity.fit(low_rank_data(2000), n_components=5)
    inside = density.score(low_rank_data(500))
    outside = density.score(low_rank_data(500) + np.random.default_rng(1).normal(scale=1.0, size=(500, 40)))
    threshold = rejection_threshold(inside, 0.01)
    assert np.mean(inside > threshold) <= 0.011
    assert np.mean(outside > threshold) > 0.99


def test_the_score_matches_the_full_ppca_mahalanobis_distance(low_rank_data):
    train = low_rank_data(1000)
    density = FeatureDensity.fit(train, n_components=5)
    u, lam = density.components.astype(np.float64), density.variances.astype(np.float64)
    covariance = u @ np.diag(lam - density.residual_variance) @ u.T + density.residual_variance * np.eye(40)
    points = low_rank_data(20) + 0.5
    centred = points - density.mean
    expected = np.einsum("ij,jk,ik->i", centred, np.linalg.inv(covariance), centred) / 40
    np.testing.assert_allclose(density.score(points), expected, rtol=1e-3)


def test_more_components_than_data_allows_is_clamped():
    density = FeatureDensity.fit(np.random.default_rng(2).normal(size=(10, 50)), n_components=128)
    assert density.components.shape == (50, 9)
    assert np.isfinite(density.score(np.zeros((1, 50)))).all()


def test_confidence_threshold_reaches_the_target_accuracy():
    rng = np.random.default_rng(3)
    confidence = rng.uniform(0.34, 1.0, 2000)
    correct = rng.uniform(size=2000) < confidence  # calibrated: right as often as it is confident
    probabilities = np.stack([confidence, (1 - confidence) / 2, (1 - confidence) / 2], axis=1)
    y_true = np.where(correct, 0, 1)
    chosen = confidence_threshold(probabilities, y_true, target_accuracy=0.9)
    answered = confidence >= chosen["threshold"]
    assert correct[answered].mean() >= 0.9
    assert chosen["accuracy_when_answered"] == pytest.approx(correct[answered].mean())
    assert chosen["coverage"] == pytest.approx(answered.mean())
    assert 0.7 < chosen["threshold"] < 0.9  # a calibrated model needs roughly 0.8 to be 90% right


def test_confidence_threshold_when_the_target_is_out_of_reach():
    probabilities = np.array([[0.6, 0.4], [0.7, 0.3]])
    chosen = confidence_threshold(probabilities, np.array([1, 1]), target_accuracy=0.9)
    assert chosen["threshold"] == pytest.approx(0.7)
    assert chosen["coverage"] == pytest.approx(0.5)
