"""Checkpoints that carry everything needed to use them: classes, preprocessing, config, metrics.

``best.pt`` (the model kept by the validation metric) is small and self-describing; ``last.pt``
adds the optimiser, schedule, history and random state so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dermlens.data.images import Preprocessing
from dermlens.errors import ModelFileError

FORMAT = "dermlens-checkpoint"
VERSION = 1


@dataclass
class ModelInfo:
    """What a checkpoint says about its model, besides the weights."""

    backbone: str
    classes: tuple[str, ...]
    preprocessing: Preprocessing
    dropout: float = 0.2
    n_metadata: int = 0
    temperature: float = 1.0
    decision_bias: tuple[float, ...] | None = None  # see dermlens.inference.decision
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    #: an ensemble's members, one line each (name, backbone, input size, temperature); empty otherwise
    members: tuple[dict[str, Any], ...] = ()
    #: an ensemble's recalibration of its averaged log-probabilities, {"matrix": k x k, "bias": k}
    #: (`dermlens.models.recalibration`); a single model has it folded into its last layer
    output_map: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        values = {"backbone": self.backbone, "classes": list(self.classes),
                  "preprocessing": self.preprocessing.to_dict(), "dropout": self.dropout,
                  "n_metadata": self.n_metadata, "temperature": self.temperature,
                  "decision_bias": None if self.decision_bias is None else list(self.decision_bias),
                  "config": self.config, "metrics": self.metrics}
        if self.members:
            values["members"] = [dict(member) for member in self.members]
        if self.output_map is not None:
            values["output_map"] = dict(self.output_map)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ModelInfo":
        return cls(backbone=values["backbone"], classes=tuple(values["classes"]),
                   preprocessing=Preprocessing.from_dict(values["preprocessing"]),
                   dropout=float(values.get("dropout", 0.2)), n_metadata=int(values.get("n_metadata", 0)),
                   temperature=float(values.get("temperature", 1.0)),
                   decision_bias=None if values.get("decision_bias") is None
                   else tuple(float(v) for v in values["decision_bias"]),
                   config=values.get("config", {}),
                   metrics=values.get("metrics", {}),
                   members=tuple(values.get("members", ())),
                   output_map=values.get("output_map"))


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary file, then rename: a kill mid-write never leaves a broken file."""
    import torch

    path = Path(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, partial)
    os.replace(partial, path)


def save_model(model, info: ModelInfo, path: Path, *, state_dict: dict | None = None,
               **extra: Any) -> None:
    """Write a checkpoint of ``model`` (or of ``state_dict``, a modified copy of its weights)."""
    module = getattr(model, "module", model)  # unwrap DistributedDataParallel
    atomic_save({"format": FORMAT, "version": VERSION, "info": info.to_dict(),
                 "state_dict": state_dict if state_dict is not None else module.state_dict(),
                 **extra}, path)


def save_ensemble(members: list[tuple[Any, ModelInfo]], info: ModelInfo, path: Path) -> None:
    """Write an ensemble checkpoint: ``info`` describes the whole, each member keeps its own checkpoint
    entry (weights and `ModelInfo`), so `load_model` rebuilds the `EnsembleClassifier`."""
    atomic_save({"format": FORMAT, "version": VERSION, "info": info.to_dict(),
                 "members": [{"info": member_info.to_dict(), "state_dict": model.state_dict()}
                             for model, member_info in members]}, path)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dictionary, with clear errors for a missing or foreign file."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"checkpoint {path} does not exist")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling raises many types
        raise ModelFileError(f"{path} is not a readable dermlens checkpoint (only tensors and plain "
                             f"values are loaded, never code): {error}") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a dermlens checkpoint (train one with `dermlens train`)")
    if blob.get("version", 0) > VERSION:
        raise ModelFileError(f"{path} was written by a newer dermlens; upgrade to read it")
    return blob


def load_model(path: str | Path):
    """(model in eval mode, ModelInfo) from a dermlens checkpoint.

    >>> model, info = load_model("runs/ham/best.pt")   # doctest: +SKIP
    """
    blob = read_checkpoint(path)
    info = ModelInfo.from_dict(blob["info"])
    if "members" in blob:
        return _load_ensemble(path, blob["members"], info.output_map), info
    return _build_model(path, info, blob["state_dict"]), info


def _load_ensemble(path: str | Path, members: list[dict], output_map: dict[str, Any] | None):
    import numpy as np

    from dermlens.models.ensemble import EnsembleClassifier

    infos = [ModelInfo.from_dict(member["info"]) for member in members]
    models = [_build_model(path, info, member["state_dict"]) for info, member in zip(infos, members)]
    mapping = None if output_map is None else (np.asarray(output_map["matrix"]), np.asarray(output_map["bias"]))
    return EnsembleClassifier(models, [info.temperature for info in infos],
                              [info.preprocessing for info in infos], output_map=mapping).eval()


def _build_model(path: str | Path, info: ModelInfo, state_dict: dict):
    from dermlens.data.metadata import N_FEATURES
    from dermlens.models import create_model

    if info.n_metadata not in (0, N_FEATURES):
        raise ModelFileError(f"{path} expects {info.n_metadata} patient metadata features; this "
                             f"version of dermlens encodes {N_FEATURES} (age, sex, body site)")
    model = create_model(info.backbone, len(info.classes), pretrained=False, dropout=info.dropout,
                         n_metadata=info.n_metadata)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        raise ModelFileError(f"weights in {path} do not match backbone {info.backbone}: {error}") from None
    return model.eval()
