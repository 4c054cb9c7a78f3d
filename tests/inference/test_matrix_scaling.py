"""Matrix scaling: a reference fit, cross-validated strength, and the cases where it must stand aside."""

from __future__ import annotations

import numpy as np
import pytest

from dermlens.inference.calibration import softmax
from dermlens.inference.matrix_scaling import _fit, fit_matrix_scaling


def distorted_logits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distorted logits, targets, honest logits): targets drawn from the honest logits' softmax; the
    distortion inflates class 0, mixes classes 1 and 2, and sharpens everything."""
    rng = np.random.default_rng(seed)
    honest = rng.normal(size=(n, 3)) * 1.5
    targets = np.array([rng.choice(3, p=p) for p in softmax(honest)])
    mixing = np.array([[2.0, 0.0, 0.0], [0.0, 1.6, 0.9], [0.0, 0.9, 1.6]])
    return honest @ mixing.T + [2.0, 0.0, -1.0], targets, honest


def test_without_a_penalty_it_is_multinomial_logistic_regression_on_the_logits():
    from sklearn.linear_model import LogisticRegression

    logits, targets, _ = distorted_logits(1500)
    matrix, bias = _fit(logits, targets, strength=0.0)
    reference = LogisticRegression(C=np.inf, max_iter=5000, tol=1e-10).fit(logits, targets)
    np.testing.assert_allclose(softmax(logits @ matrix.T + bias), reference.predict_proba(logits), atol=2e-4)


def test_it_undoes_a_class_wise_distortion_that_a_temperature_cannot():
    from dermlens.inference.calibration import fit_temperature, nll_loss

    logits, targets, honest = distorted_logits(3000)
    fresh_logits, fresh_targets, fresh_honest = distorted_logits(3000, seed=1)
    temperature = fit_temperature(logits, targets)
    scaling = fit_matrix_scaling(logits / temperature, targets)
    assert scaling is not None and scaling.strength > 0
    assert scaling.cv_nll < scaling.cv_nll_temperature
    on_fresh = scaling.apply(fresh_logits / temperature)
    with_temperature = nll_loss(fresh_logits, fresh_targets, temperature)
    recalibrated = nll_loss(on_fresh, fresh_targets, 1.0)
    best_possible = nll_loss(fresh_honest, fresh_targets, 1.0)
    assert recalibrated < with_temperature - 0.05  # most of the gap to the honest model is closed
    assert recalibrated - best_possible < (with_temperature - best_possible) / 4


def test_it_stands_aside_where_it_does_not_pay():
    _, targets, honest = distorted_logits(600)
    assert fit_matrix_scaling(honest, targets) is None  # already calibrated: the temperature is enough
    few = np.array([0] * 40 + [1] * 40 + [2] * 4)  # 4 images of class 2 cannot make 5 folds
    assert fit_matrix_scaling(np.random.default_rng(0).normal(size=(84, 3)), few) is None


def test_the_chosen_strength_is_from_the_grid_and_the_map_serialises():
    logits, targets, _ = distorted_logits(800)
    scaling = fit_matrix_scaling(logits, targets, strengths=(0.01, 1.0))
    assert scaling.strength in (0.01, 1.0)
    values = scaling.to_dict()
    assert np.asarray(values["matrix"]).shape == (3, 3) and len(values["bias"]) == 3
    np.testing.assert_allclose(scaling.apply(logits[:5]), logits[:5] @ scaling.matrix.T + scaling.bias)
    with pytest.raises(ValueError):
        fit_matrix_scaling(logits, targets, folds=1)
