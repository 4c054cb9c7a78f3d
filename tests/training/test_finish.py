"""After training: calibration on validation (a temperature, or matrix scaling where it pays), the
decision rule chosen again on the recalibrated logits, and the held-out test measured with both."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from dermlens.inference.calibration import softmax
from dermlens.training.finish import calibrate_and_test

CLASSES = ("mel", "nv", "bkl")


def synthetic_run(n: int = 2400, seed: int = 0):
    """(data, logits_of): an imbalanced three-class problem whose model inflates the majority class
    and confuses the two minority classes, split 50/25/25."""
    rng = np.random.default_rng(seed)
    targets = rng.choice(3, size=n, p=[0.15, 0.7, 0.15])
    honest = rng.normal(size=(n, 3)) + 2.2 * np.eye(3)[targets]
    mixing = np.array([[1.0, 0.0, 0.7], [0.0, 1.0, 0.0], [0.7, 0.0, 1.0]])
    logits = 2.5 * (honest @ mixing.T) + [0.0, 1.5, -0.5]
    order = rng.permutation(n)
    split = SimpleNamespace(train=order[: n // 2], val=order[n // 2: 3 * n // 4], test=order[3 * n // 4:])
    dataset = SimpleNamespace(classes=CLASSES, ids=[f"img{i}" for i in range(n)], source="synthetic")
    data = SimpleNamespace(split=split, targets=targets, dataset=dataset)
    return data, lambda indices, label: logits[indices]


def test_matrix_scaling_is_fitted_where_it_pays_and_the_test_is_measured_with_it(tmp_path):
    from sklearn.metrics import balanced_accuracy_score, log_loss

    data, logits_of = synthetic_run()
    plain = calibrate_and_test(logits_of, data, None, tmp_path / "t", "t", calibration="temperature")
    matrix = calibrate_and_test(logits_of, data, None, tmp_path / "m", "m", calibration="matrix")
    assert plain.scaling is None and plain.output_map is None and plain.calibration["method"] == "temperature"
    assert matrix.scaling is not None and matrix.calibration["method"] == "matrix"
    assert matrix.calibration["val_ece_after"] <= matrix.calibration["val_ece_temperature"]

    # the figures are those of the folded map: raw logits -> map -> softmax, decisions with the bias
    test = data.split.test
    mapping, shift = matrix.output_map
    recalibrated = logits_of(test, "") @ mapping.T + shift
    probabilities = softmax(recalibrated)
    bias = np.zeros(3) if matrix.decision_bias is None else np.asarray(matrix.decision_bias)
    decisions = (recalibrated + bias).argmax(axis=1)
    assert matrix.metrics["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(data.targets[test], decisions))
    assert log_loss(data.targets[test], probabilities) < log_loss(
        data.targets[test], softmax(logits_of(test, ""), plain.temperature)) - 0.02
    assert matrix.metrics["macro_auc"] > plain.metrics["macro_auc"]
    # the prior correction is chosen again on the recalibrated logits (they carry the 70% majority)
    assert matrix.calibration["prior_tau"] > 0 and matrix.decision_bias is not None
    assert matrix.metrics["balanced_accuracy"] > plain.metrics["balanced_accuracy"]


def test_too_few_validation_images_per_class_keeps_the_temperature(tmp_path):
    data, logits_of = synthetic_run(n=40)
    result = calibrate_and_test(logits_of, data, (0.0, -0.5, 0.0), tmp_path, "t", calibration="matrix")
    assert result.scaling is None and result.calibration["method"] == "temperature"
    assert result.decision_bias == pytest.approx((0.0, -0.5, 0.0))  # the training's decision stands
