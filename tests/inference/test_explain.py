"""`Predictor.explain` on the bundled model: the same answer as `predict`, with a heatmap and an outline."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from dermlens.inference.predictor import Explanation, Predictor


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor.load()


@pytest.fixture(scope="module")
def ham_paths(ham_dir):
    from dermlens.data.readers import read_dataset

    ham = read_dataset(ham_dir)
    return [ham.paths[i] for i in np.random.default_rng(3).choice(len(ham), 6, replace=False)]


def decode(url: str) -> np.ndarray:
    prefix = "data:image/png;base64,"
    assert url.startswith(prefix)
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url[len(prefix):]))).convert("RGB"))


def test_explain_gives_the_prediction_with_a_heatmap_and_an_outline(predictor, ham_paths):
    assert predictor.model.has_class_maps
    outlined = 0
    for path in ham_paths:
        explanation = predictor.explain(path)
        assert isinstance(explanation, Explanation)
        assert explanation.prediction == predictor.predict(path)
        if explanation.prediction.status == "rejected":
            continue
        view = explanation.view
        preprocessing = predictor.model.preprocessing
        assert view.shape == (preprocessing.height, preprocessing.width, 3) and view.dtype == np.uint8
        heat = explanation.heatmap
        assert heat.shape == view.shape[:2] and heat.dtype == np.float32
        assert heat.min() >= 0.0 and heat.max() == pytest.approx(1.0) and heat.std() > 0.05
        assert explanation.heatmap_class == explanation.prediction.decision
        images = explanation.images()
        assert np.array_equal(decode(images["image"]), view)
        assert decode(images["heatmap"]).shape == view.shape
        if explanation.lesion.found:
            outlined += 1
            assert explanation.abcd is not None and explanation.abcd.area_px == int(explanation.lesion.mask.sum())
            assert decode(images["mask"]).shape == view.shape
        else:
            assert explanation.abcd is None and "mask" not in images
        as_dict = explanation.to_dict(images=False)
        assert as_dict["status"] == explanation.prediction.status
        assert as_dict["explanation"]["heatmap_class"] == explanation.heatmap_class
    assert outlined >= 4


def test_predict_does_not_ask_for_the_class_maps(predictor, ham_paths):
    asked: list[list[str]] = []
    session = predictor.model.session

    class Recording:
        def run(self, names, feeds):
            asked.append(list(names))
            return session.run(names, feeds)

    predictor.model.session = Recording()
    try:
        predictor.predict(ham_paths[0])
        predictor.predict_many(ham_paths[:3], progress=False)
        assert asked and all("class_maps" not in names for names in asked)
        asked.clear()
        predictor.explain(ham_paths[0])
        assert asked == [["logits", "not_skin_score", "class_maps"]]  # one pass for all three
    finally:
        predictor.model.session = session


@pytest.mark.parametrize("source", [np.full((300, 400, 3), 128, np.uint8), b"not an image at all"])
def test_a_rejected_image_gets_no_heatmap_and_no_mask(predictor, source):
    explanation = predictor.explain(source, name="probe")
    assert explanation.prediction.status == "rejected"
    assert explanation.prediction == predictor.predict(source, name="probe")
    assert explanation.heatmap is None and explanation.lesion is None and explanation.abcd is None
    assert "heatmap" not in explanation.images() and "mask" not in explanation.images()


def test_an_image_the_not_skin_check_rejects_shows_only_itself(predictor):
    rng = np.random.default_rng(0)
    # a sharp, bright, colourful pattern: passes the quality gates, fails the not-skin check
    tiles = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    pattern = np.asarray(Image.fromarray(tiles).resize((400, 300), Image.Resampling.NEAREST))
    explanation = predictor.explain(pattern)
    assert explanation.prediction.status == "rejected"
    if explanation.prediction.reason != "not_skin":
        pytest.skip(f"the probe was rejected earlier ({explanation.prediction.reason})")
    assert explanation.heatmap is None and explanation.lesion is None
    assert set(explanation.images()) == {"image"}


def test_a_model_without_class_maps_still_explains(predictor, ham_paths):
    import dataclasses

    plain = Predictor(dataclasses.replace(predictor.model, outputs=("logits", "not_skin_score")))
    assert not plain.model.has_class_maps
    explanation = plain.explain(ham_paths[0])
    assert explanation.prediction == predictor.predict(ham_paths[0])
    assert explanation.heatmap is None and explanation.heatmap_class is None
    assert "heatmap" not in explanation.images()
