"""Grad-CAM in torch agrees with the class maps of the exported ONNX graph at the pooled layer."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")
pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def model():
    from dermlens.errors import ModelFileError
    from dermlens.models import create_model

    torch.manual_seed(0)  # the new 7-class head is random; the ImageNet backbone is not
    try:
        return create_model("efficientnet_lite0", 7, pretrained=True).eval()
    except ModelFileError as error:  # the weights package is part of the train extra
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def images(ham_dir):
    from dermlens.data.images import Preprocessing, load_rgb
    from dermlens.models import get_backbone

    spec = get_backbone("efficientnet_lite0")
    preprocessing = Preprocessing(height=192, width=256, mean=spec.mean, std=spec.std)
    paths = sorted((ham_dir / "images").glob("*.jpg"))[:4]
    return torch.from_numpy(np.concatenate([preprocessing(load_rgb(path)) for path in paths]))


@pytest.mark.slow
def test_onnx_class_maps_match_torch_gradcam_at_the_layer_feeding_the_pool(model, images, tmp_path):
    from dermlens.data.images import Preprocessing
    from dermlens.data.labels import HAM10000_CLASSES
    from dermlens.explain.gradcam import GradCAM
    from dermlens.explain.heatmap import class_heatmap
    from dermlens.export.onnx import export_onnx
    from dermlens.inference.onnx_model import OnnxModel
    from dermlens.models import get_backbone
    from dermlens.training.checkpoint import ModelInfo, save_model

    spec = get_backbone("efficientnet_lite0")
    info = ModelInfo(backbone="efficientnet_lite0", classes=HAM10000_CLASSES,
                     preprocessing=Preprocessing(height=192, width=256, mean=spec.mean, std=spec.std))
    save_model(model, info, tmp_path / "best.pt")
    exported = OnnxModel.load(export_onnx(tmp_path / "best.pt", tmp_path / "model.onnx"))
    assert exported.has_class_maps
    outputs = exported.run_outputs(images.numpy(), ["logits", "class_maps"])
    logits, maps = outputs["logits"], outputs["class_maps"]
    targets = [int(i) for i in logits.argmax(axis=1)]
    with GradCAM(model, spec.gradcam_layer) as cam:  # the layer feeding the pooling
        heat = cam(images, targets)
    assert heat.shape == (len(images), *images.shape[-2:])
    for row, target in enumerate(targets):
        from_onnx = class_heatmap(maps[row, target], images.shape[-2:])
        assert np.ptp(from_onnx) > 0.5
        assert np.corrcoef(from_onnx.ravel(), heat[row].ravel())[0, 1] > 0.99


@pytest.mark.slow
def test_gradcam_works_at_an_earlier_layer_and_removes_its_hooks(model, images):
    from dermlens.errors import ConfigError
    from dermlens.explain.gradcam import GradCAM

    layer = model.get_submodule("backbone.blocks.5")
    cam = GradCAM(model, "backbone.blocks.5")
    heat = cam(images[:2], class_index=0)
    per_image = cam(images[:2], class_index=[0, 0])
    cam.close()
    assert heat.shape == (2, *images.shape[-2:]) and heat.dtype == np.float32
    assert heat.min() >= 0.0 and heat.max() <= 1.0
    np.testing.assert_allclose(heat, per_image, atol=1e-6)
    assert not layer._forward_hooks
    with pytest.raises(ConfigError):
        GradCAM(model, "backbone.no_such_layer")
