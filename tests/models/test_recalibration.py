"""A linear recalibration folded into a classifier's last layer, or kept as an ensemble's output map."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dermlens.data.images import Preprocessing
from dermlens.models import create_model
from dermlens.models.ensemble import EnsembleClassifier
from dermlens.models.recalibration import apply_output_map

MATRIX = np.array([[1.8, 0.1, 0.0], [-0.2, 1.5, 0.3], [0.0, 0.4, 1.1]])
BIAS = np.array([-0.5, 0.2, 0.7])


@pytest.fixture
def classifiers():
    torch.manual_seed(0)
    return [create_model("efficientnet_lite0", 3, pretrained=False).eval() for _ in range(2)]


def test_folded_into_the_last_layer_the_logits_are_mapped_exactly(classifiers):
    model = classifiers[0]
    images = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        before = model(images).double().numpy()
        apply_output_map(model, MATRIX, BIAS)
        after = model(images).double().numpy()
    np.testing.assert_allclose(after, before @ MATRIX.T + BIAS, atol=1e-4)
    assert sorted(name for name, _ in model.classifier.named_parameters()) == ["bias", "weight"]


def test_an_ensemble_keeps_the_map_on_its_output_and_maps_compose(classifiers):
    ensemble = EnsembleClassifier(classifiers, [1.0, 1.0], [Preprocessing(64, 64)] * 2).eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        plain = ensemble(images).double().numpy()
        apply_output_map(ensemble, MATRIX, BIAS)
        once = ensemble(images).double().numpy()
        apply_output_map(ensemble, np.eye(3) * 2.0, np.zeros(3))
        twice = ensemble(images).double().numpy()
    np.testing.assert_allclose(once, plain @ MATRIX.T + BIAS, atol=1e-4)
    np.testing.assert_allclose(twice, 2.0 * once, atol=1e-4)
    member_logits = classifiers[0](images)  # the members themselves are untouched
    assert member_logits.shape == (2, 3)


def test_an_ensemble_checkpoint_carries_its_output_map(classifiers, tmp_path):
    from dermlens.training.checkpoint import ModelInfo, load_model, save_ensemble

    prep = Preprocessing(64, 64)
    infos = [ModelInfo("efficientnet_lite0", ("a", "b", "c"), prep) for _ in classifiers]
    whole = ModelInfo("efficientnet_lite0", ("a", "b", "c"), prep,
                      output_map={"matrix": MATRIX.tolist(), "bias": BIAS.tolist()})
    save_ensemble(list(zip(classifiers, infos)), whole, tmp_path / "best.pt")
    model, info = load_model(tmp_path / "best.pt")
    reference = EnsembleClassifier(classifiers, [1.0, 1.0], [prep, prep], output_map=(MATRIX, BIAS)).eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(images), reference(images))
    assert info.output_map == {"matrix": MATRIX.tolist(), "bias": BIAS.tolist()}


def test_only_dermlens_classifiers_can_be_recalibrated():
    with pytest.raises(TypeError, match="expected a dermlens classifier"):
        apply_output_map(torch.nn.Linear(3, 3), MATRIX, BIAS)


def test_an_exported_ensemble_answers_with_its_output_map(classifiers, tmp_path):
    from dermlens.export.onnx import export_onnx
    from dermlens.inference.onnx_model import OnnxModel
    from dermlens.training.checkpoint import ModelInfo, load_model, save_ensemble

    prep = Preprocessing(64, 64)
    infos = [ModelInfo("efficientnet_lite0", ("a", "b", "c"), prep) for _ in classifiers]
    whole = ModelInfo("efficientnet_lite0", ("a", "b", "c"), prep,
                      output_map={"matrix": MATRIX.tolist(), "bias": BIAS.tolist()})
    save_ensemble(list(zip(classifiers, infos)), whole, tmp_path / "best.pt")
    exported = OnnxModel.load(export_onnx(tmp_path / "best.pt", tmp_path / "model.onnx"))
    model, _ = load_model(tmp_path / "best.pt")
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = model(images).numpy()
    np.testing.assert_allclose(exported.logits(images.numpy()), expected, atol=1e-4)
