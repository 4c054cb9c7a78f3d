"""An exported dermlens model run by ONNX Runtime: logits and calibrated probabilities, no torch."""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dermlens.data.images import Preprocessing
from dermlens.errors import ModelFileError
from dermlens.inference.gates import ServingGates

METADATA_KEY = "dermlens"
CLASS_MAPS = "class_maps"  # the output with per-class maps for heatmaps (dermlens.export.class_maps)


def available_cpus() -> int:
    """The CPUs this process may run on (a container's or taskset's limit, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class OnnxModel:
    """A loaded ``.onnx`` file and what its metadata says about it."""

    session: object
    classes: tuple[str, ...]
    preprocessing: Preprocessing
    temperature: float
    info: dict
    gates: ServingGates
    outputs: tuple[str, ...]

    @classmethod
    def load(cls, path: str | Path, threads: int = 0) -> OnnxModel:
        """Open an exported model; a foreign or corrupt file gets a clear error.

        >>> model = OnnxModel.load("model.onnx")   # doctest: +SKIP
        """
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"model file {path} does not exist")
        options = ort.SessionOptions()
        # ONNX Runtime's default counts physical cores, which leaves one of two vCPUs idle here
        options.intra_op_num_threads = threads or available_cpus()
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # noqa: BLE001 (onnxruntime raises its own exception types)
            raise ModelFileError(f"{path} is not a valid ONNX model: {error}") from None
        raw = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if raw is None:
            raise ModelFileError(f"{path} is an ONNX model but not a dermlens export (no class list "
                                 f"or preprocessing in its metadata); export it with `dermlens export`")
        try:
            info = json.loads(raw)
            preprocessing = Preprocessing.from_dict(info["preprocessing"])
            classes = tuple(info["classes"])
        except (ValueError, KeyError, TypeError) as error:
            raise ModelFileError(f"{path} has damaged dermlens metadata ({error}); export it again") from None
        outputs = tuple(output.name for output in session.get_outputs())
        if "logits" not in outputs or [i.name for i in session.get_inputs()] != ["image"]:
            raise ModelFileError(f"{path} does not have the dermlens inputs and outputs (image -> logits)")
        return cls(session, classes, preprocessing, float(info.get("temperature", 1.0)), info,
                   ServingGates.from_dict(info.get("gates")), outputs)

    @functools.cached_property
    def decision_bias(self) -> np.ndarray | None:
        bias = self.info.get("decision_bias")
        return None if bias is None else np.asarray(bias, np.float64)

    @property
    def has_not_skin_check(self) -> bool:
        return "not_skin_score" in self.outputs and self.gates.not_skin_threshold is not None

    @property
    def has_class_maps(self) -> bool:
        """Whether the graph has the ``class_maps`` output for heatmaps (`dermlens.export.class_maps`)."""
        return CLASS_MAPS in self.outputs

    @functools.cached_property
    def serving_outputs(self) -> list[str]:
        """The outputs a prediction needs: ``logits`` and, where the graph has it, ``not_skin_score``."""
        return [name for name in ("logits", "not_skin_score") if name in self.outputs]

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """float32 (N, 3, H, W) normalised images -> logits (N, n_classes), not-skin scores (N,) or None.

        Only these outputs are asked for: the class maps (`run_outputs`) are not copied out.
        """
        named = self.run_outputs(batch, self.serving_outputs)
        return named["logits"], named.get("not_skin_score")

    def run_outputs(self, batch: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        """The named outputs of one pass over float32 (N, 3, H, W) normalised images."""
        results = self.session.run(names, {"image": np.ascontiguousarray(batch, np.float32)})
        return dict(zip(names, results))

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """float32 (N, 3, H, W) normalised images -> (N, n_classes) logits."""
        return self.run(batch)[0]
