"""An exported dermlens model run by ONNX Runtime: logits and calibrated probabilities, no torch."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dermlens.data.images import Preprocessing
from dermlens.errors import ModelFileError

METADATA_KEY = "dermlens"


@dataclass
class OnnxModel:
    """A loaded ``.onnx`` file and what its metadata says about it."""

    session: object
    classes: tuple[str, ...]
    preprocessing: Preprocessing
    temperature: float
    info: dict

    @classmethod
    def load(cls, path: str | Path, threads: int = 0) -> "OnnxModel":
        """Open an exported model; a foreign or corrupt file gets a clear error.

        >>> model = OnnxModel.load("model.onnx")   # doctest: +SKIP
        """
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"model file {path} does not exist")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types
            raise ModelFileError(f"{path} is not a valid ONNX model: {error}") from None
        raw = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if raw is None:
            raise ModelFileError(f"{path} is an ONNX model but not a dermlens export (no class list "
                                 f"or preprocessing in its metadata); export it with `dermlens export`")
        info = json.loads(raw)
        return cls(session, tuple(info["classes"]), Preprocessing.from_dict(info["preprocessing"]),
                   float(info.get("temperature", 1.0)), info)

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """float32 (N, 3, H, W) normalised images -> (N, n_classes) logits."""
        return self.session.run(["logits"], {"image": np.ascontiguousarray(batch, np.float32)})[0]
