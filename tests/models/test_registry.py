"""The backbone registry: every backbone builds, runs, fine-tunes by stage, explains and exports to ONNX."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dermlens.errors import ConfigError, ModelFileError
from dermlens.models import BackboneSpec, create_model, get_backbone, list_backbones, register_backbone

#: Big networks (tens of millions of parameters, long ONNX exports) run with the slow tests only.
BIG = {"inception_resnet_v2", "resnet101", "xception", "inception_v3"}
BACKBONES = [pytest.param(name, marks=pytest.mark.slow) if name in BIG else name for name in list_backbones()]
LITE = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
CAT_CLASSES = {281, 282, 285}  # ImageNet: tabby, tiger cat, Egyptian cat


@pytest.fixture(autouse=True)
def _one_thread():
    """Other work shares this machine: keep each test on one core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _random_model(name: str):
    torch.manual_seed(0)
    return create_model(name, 7, pretrained=False).eval()


@pytest.mark.parametrize("name", BACKBONES)
def test_backbone_builds_runs_and_names_real_stages_and_gradcam_layer(name):
    model = _random_model(name)
    spec = get_backbone(name)
    assert model.backbone_name == name

    feature_maps = []
    layer = dict(model.named_modules()).get(spec.gradcam_layer)
    assert layer is not None, f"{name}: gradcam_layer {spec.gradcam_layer!r} is not a module of the model"
    hook = layer.register_forward_hook(lambda module, inputs, output: feature_maps.append(output))
    pooled = []
    pool_hook = model.backbone.global_pool.register_forward_pre_hook(lambda module, inputs: pooled.append(inputs[0]))
    with torch.no_grad():
        logits = model(torch.rand(2, 3, 150, 200))
    hook.remove()
    pool_hook.remove()
    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()
    # Grad-CAM needs a spatial feature map from that layer
    assert len(feature_maps) == 1 and feature_maps[0].dim() == 4 and feature_maps[0].shape[0] == 2
    # the map the pooling averages, so Grad-CAM there is the exported graph's class maps
    assert torch.equal(feature_maps[0], pooled[0]), f"{name}: {spec.gradcam_layer} does not feed the pooling"

    parameter_names = [n for n, _ in model.backbone.named_parameters()]
    assert spec.stages, f"{name} lists no fine-tuning stages"
    unmatched = [stage for stage in spec.stages if not any(n.startswith(stage) for n in parameter_names)]
    assert not unmatched, f"{name}: stages {unmatched} match no parameter of the backbone"
    uncovered = sorted({n.rsplit(".", 1)[0] for n in parameter_names if not n.startswith(spec.stages)})
    assert not uncovered, f"{name}: parameters {uncovered} belong to no stage (never fine-tuned by 'last')"
    # input side to output side: each stage starts after the one before it
    first_use = [min(i for i, n in enumerate(parameter_names) if n.startswith(stage))
                 for stage in spec.stages if any(n.startswith(stage) for n in parameter_names)]
    assert first_use == sorted(first_use)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # dynamo=False: the TorchScript exporter
@pytest.mark.parametrize("name", BACKBONES)
def test_backbone_exports_to_onnx_with_matching_logits_and_not_skin_statistics(name, tmp_path):
    """The serving graph: logits plus the channel statistics of the backbone's not-skin tap."""
    import onnxruntime as ort

    from dermlens.export.taps import TappedClassifier

    model = _random_model(name)
    spec = get_backbone(name)
    assert spec.density_tap, f"{name} names no module for the not-skin check"
    tapped = TappedClassifier(model, spec.density_tap).eval()
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(tapped, (torch.zeros(1, 3, 150, 200),), str(path), input_names=["image"],
                      output_names=["logits", "statistics"], opset_version=17, dynamo=False,
                      dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}, "statistics": {0: "batch"}})
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    images = torch.rand(2, 3, 150, 200, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, statistics = (t.numpy() for t in tapped(images))
        np.testing.assert_array_equal(expected, model(images).numpy())
    got, got_statistics = session.run(["logits", "statistics"], {"image": images.numpy()})
    channels = model.backbone.get_submodule(spec.density_tap)
    assert got_statistics.shape == statistics.shape and statistics.shape[0] == 2 and channels is not None
    assert statistics.shape[1] % 2 == 0 and (statistics[:, statistics.shape[1] // 2:] > 0).all()  # std > 0
    np.testing.assert_allclose(got_statistics, statistics, rtol=1e-3, atol=1e-3 * max(1.0, np.abs(statistics).max()))
    assert got.shape == (2, 7)
    # an untrained inception_v3 in eval mode (BatchNorm at its initial statistics) gives logits near
    # 1e10, so the tolerance is 1e-4 of the logit scale (1e-4 itself for the usual scale of a few units)
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * scale)


@pytest.mark.parametrize("name", LITE)
def test_packaged_imagenet_weights_recognise_a_cat(name):
    from skimage import data

    spec = get_backbone(name)
    rgb = np.asarray(Image.fromarray(data.chelsea()).resize((224, 224), Image.Resampling.BILINEAR))
    scaled = (rgb.astype(np.float32) / 255.0 - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    image = torch.from_numpy(np.ascontiguousarray(scaled.transpose(2, 0, 1)[None]))
    model = create_model(name, 1000, pretrained=True).eval()
    with torch.no_grad():
        top5 = model(image).topk(5).indices[0].tolist()
    assert CAT_CLASSES & set(top5), f"{name} top-5 ImageNet classes for a cat photo: {top5}"


def test_only_the_efficientnet_lite_family_ships_weights():
    assert list_backbones(pretrained_only=True) == list(LITE)
    assert set(LITE) < set(list_backbones())


def test_duplicate_registration_is_an_error():
    existing = get_backbone("efficientnet_lite0")
    with pytest.raises(ValueError, match="efficientnet_lite0.*already registered"):
        register_backbone(BackboneSpec(name="efficientnet_lite0", timm_name="resnet18", description="dup"))
    assert get_backbone("efficientnet_lite0") is existing


def test_a_registered_backbone_can_be_built(monkeypatch):
    import dermlens.models.registry as registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    register_backbone(BackboneSpec(name="tiny_resnet", timm_name="resnet18", description="test",
                                   gradcam_layer="backbone.layer4", stages=("layer3", "layer4")))
    assert list_backbones()[-1] == "tiny_resnet"
    model = create_model("tiny_resnet", 3, pretrained=False).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 64)).shape == (1, 3)


def test_unknown_backbone_names_the_known_ones():
    with pytest.raises(ConfigError) as raised:
        create_model("efficientnet_b9", 7, pretrained=False)
    message = str(raised.value)
    assert "efficientnet_b9" in message
    assert all(name in message for name in list_backbones())


def test_pretrained_without_packaged_weights_is_a_config_error():
    with pytest.raises(ConfigError, match="resnet50.*no packaged pretrained weights"):
        create_model("resnet50", 7, pretrained=True)


def test_local_weights_file_is_loaded(tmp_path):
    import timm

    torch.manual_seed(3)
    network = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    path = tmp_path / "lite0.pth"
    torch.save({"state_dict": network.state_dict()}, path)  # the common {"state_dict": ...} wrapper
    model = create_model("efficientnet_lite0", 7, pretrained=False, weights_path=path)
    expected = network.conv_stem.weight
    assert torch.equal(model.backbone.conv_stem.weight, expected)
    assert model.classifier.out_features == 7


def test_weights_of_another_network_are_a_model_file_error(tmp_path):
    import timm

    path = tmp_path / "resnet50.pth"
    torch.save(timm.create_model("resnet50", pretrained=False).state_dict(), path)
    with pytest.raises(ModelFileError, match="expects|do not match|do not fit"):
        create_model("efficientnet_lite0", 7, pretrained=False, weights_path=path)


@pytest.mark.parametrize("content", [b"these are not weights\n", b""])
def test_non_torch_weights_file_is_a_model_file_error(tmp_path, content):
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match="weights.pth"):
        create_model("efficientnet_lite0", 7, pretrained=False, weights_path=path)


def test_missing_weights_file_is_a_model_file_error(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        create_model("efficientnet_lite0", 7, weights_path=tmp_path / "nowhere.pth")


def test_metadata_model_needs_metadata():
    torch.manual_seed(0)
    model = create_model("efficientnet_lite0", 7, pretrained=False, n_metadata=5).eval()
    images = torch.rand(2, 3, 96, 128)
    with torch.no_grad():
        assert model(images, torch.zeros(2, 5)).shape == (2, 7)
        with pytest.raises(ValueError, match="metadata"):
            model(images)
    assert model.classifier.in_features == model.n_features + 5
