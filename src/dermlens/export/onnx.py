"""Export a checkpoint to ONNX with its classes, preprocessing, temperature and serving gates.

An exported model is self-describing: `dermlens.inference` reads everything it needs from the
``dermlens`` metadata entry, so serving needs neither torch nor the checkpoint. With a fitted
not-skin density the graph has a second output, ``not_skin_score`` (see `dermlens.inference.notskin`
and `dermlens.export.taps`). Every export also has the output ``class_maps`` for Grad-CAM heatmaps
without torch (`dermlens.export.class_maps`); the predictor asks for it only when explaining.
"""

from __future__ import annotations

import json
from pathlib import Path

from dermlens.errors import ModelFileError
from dermlens.export.class_maps import add_class_maps
from dermlens.inference.gates import ServingGates
from dermlens.inference.notskin import FeatureDensity
from dermlens.inference.onnx_model import METADATA_KEY

PRIMARY_LOGITS = "primary_logits"


def serving_graph(model, density: FeatureDensity | None):
    """The classifier, plus the not-skin score of the same pass (see `dermlens.export.taps`); an
    ensemble also returns its primary member's logits, from whose head the class maps are made."""
    import torch

    from dermlens.export.taps import TappedClassifier, density_tap

    ensemble = is_ensemble(model)

    class ServingGraph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            if density is not None or ensemble:
                self.tapped = TappedClassifier(model, density_tap(model), head=ensemble)
            if density is not None:
                self.register_buffer("mean", torch.from_numpy(density.mean))
                self.register_buffer("components", torch.from_numpy(density.components))
                self.register_buffer("inverse_variances", torch.from_numpy(1.0 / density.variances))
                self.residual_scale = 1.0 / float(density.residual_variance)
                self.n_features = float(density.mean.shape[0])

        def forward(self, image):
            if density is None and not ensemble:
                return self.model(image)
            logits, statistics, *primary = self.tapped(image)
            if density is None:
                return (logits, *primary)
            centred = statistics - self.mean
            projected = centred @ self.components
            squared = projected * projected
            residual = torch.clamp((centred * centred).sum(dim=1) - squared.sum(dim=1), min=0.0)
            distance = (squared * self.inverse_variances).sum(dim=1) + residual * self.residual_scale
            return (logits, distance / self.n_features, *primary)

    return ServingGraph().eval()


def is_ensemble(model) -> bool:
    from dermlens.models.ensemble import primary_member

    return primary_member(model) is not model


def export_onnx(checkpoint: str | Path, out_path: str | Path, *, opset: int = 17,
                density: FeatureDensity | None = None, gates: ServingGates | None = None,
                model_card: dict | None = None, half_weights: bool = False) -> Path:
    """Write ``out_path`` (.onnx) from a dermlens checkpoint; input ``image`` (N, 3, H, W), outputs ``logits``,
    ``class_maps`` (N, n_classes, h, w) and, with a ``density``, ``not_skin_score``. ``half_weights``
    stores the weights as float16 (half the file; computed in float32: `dermlens.export.halfweights`).

    >>> export_onnx("runs/ham/best.pt", "model.onnx")   # doctest: +SKIP
    """
    import onnx
    import torch

    from dermlens.training.checkpoint import load_model

    model, info = load_model(checkpoint)
    if info.n_metadata:
        raise ModelFileError("exporting models with fused patient metadata is not supported yet")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    sample = torch.zeros(1, 3, info.preprocessing.height, info.preprocessing.width)
    outputs = (["logits"] + (["not_skin_score"] if density is not None else [])
               + ([PRIMARY_LOGITS] if is_ensemble(model) else []))
    torch.onnx.export(serving_graph(model, density), (sample,), str(out_path), input_names=["image"],
                      output_names=outputs, dynamic_axes={name: {0: "batch"} for name in ["image", *outputs]},
                      opset_version=opset, dynamo=False)
    proto = onnx.load(str(out_path))
    if is_ensemble(model):  # heatmaps from the primary member's head; its logits are not served
        proto = add_class_maps(proto, head_output=PRIMARY_LOGITS)
        graph_outputs = proto.graph.output
        graph_outputs.remove(next(o for o in graph_outputs if o.name == PRIMARY_LOGITS))
    else:
        proto = add_class_maps(proto)
    if half_weights:
        from dermlens.export.halfweights import store_weights_fp16

        proto = store_weights_fp16(proto)
    entry = proto.metadata_props.add()
    description = info.to_dict()
    description["weights"] = "float16" if half_weights else "float32"
    description["gates"] = (gates or ServingGates()).to_dict()
    if model_card:
        description["card"] = model_card
    entry.key, entry.value = METADATA_KEY, json.dumps(description)
    onnx.save(proto, str(out_path))
    return out_path
