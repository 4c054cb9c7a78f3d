"""Temperature scaling: fitted on validation data, it must not make calibration worse there."""

from __future__ import annotations

import numpy as np
import pytest

from dermlens.data.images import load_rgb
from dermlens.data.readers import read_dataset
from dermlens.data.splits import grouped_split
from dermlens.evaluation.calibration import expected_calibration_error
from dermlens.inference.calibration import fit_temperature, softmax
from dermlens.inference.predictor import Predictor


def test_an_overconfident_model_is_cooled_and_its_ece_falls():
    # logits four times too sharp: the fitted temperature undoes most of it
    rng = np.random.default_rng(0)
    honest = rng.normal(size=(4000, 3))
    y_true = np.array([rng.choice(3, p=p) for p in softmax(honest)])
    sharp = honest * 4
    temperature = fit_temperature(sharp, y_true)
    assert temperature == pytest.approx(4, rel=0.25)
    before = expected_calibration_error(y_true, softmax(sharp))
    after = expected_calibration_error(y_true, softmax(sharp, temperature))
    assert after < before / 3


def test_the_bundled_models_calibration_holds_on_its_validation_images(ham_dir):
    """The bundled model's own validation split (lesion-grouped, seed 0, 70/15/15, as its card says), 400
    of those images: the matrix scaling folded into its graph (`dermlens recalibrate`), then the
    temperature its int8 trunk was recalibrated with (`dermlens quantize`), give logits that need no
    further temperature, with a lower ECE than the raw logits and a lower log-loss than a temperature
    alone on them."""
    from dermlens.inference.calibration import nll_loss

    ham = read_dataset(ham_dir)
    predictor = Predictor.load()
    validation = grouped_split(ham, (0.70, 0.15, 0.15), seed=0).indices("val")
    picks = np.random.default_rng(0).choice(validation, 400, replace=False)
    model = predictor.model
    prep = model.preprocessing
    logits = np.concatenate([
        model.logits(prep.normalize(np.stack([prep.prepare(load_rgb(ham.paths[i])) for i in chunk])))
        for chunk in np.array_split(picks, 8)])
    y_true = ham.targets[picks]
    calibration = model.info["metrics"]["calibration"]
    assert calibration["method"] == "temperature" and calibration["earlier"]["method"] == "matrix"
    assert model.temperature == calibration["temperature"] == pytest.approx(1.0, abs=0.05)
    mapping = model.info["output_map"]
    raw = (logits - np.asarray(mapping["bias"])) @ np.linalg.inv(np.asarray(mapping["matrix"]).T)
    before = expected_calibration_error(y_true, softmax(raw))
    after = expected_calibration_error(y_true, softmax(logits, model.temperature))
    assert after < before
    assert fit_temperature(logits, y_true) == pytest.approx(1.0, rel=0.2)
    raw_temperature = calibration["earlier"]["temperature"]  # the float model's, before its matrix
    assert fit_temperature(raw, y_true) == pytest.approx(raw_temperature, rel=0.3)
    assert nll_loss(logits, y_true, model.temperature) < nll_loss(raw, y_true, raw_temperature)
