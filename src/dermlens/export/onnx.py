"""Export a checkpoint to ONNX with its classes, preprocessing and temperature in the file's metadata.

An exported model is self-describing: `dermlens.inference` reads everything it needs from the
``dermlens`` metadata entry, so serving needs neither torch nor the checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

from dermlens.errors import ModelFileError

METADATA_KEY = "dermlens"


def export_onnx(checkpoint: str | Path, out_path: str | Path, *, opset: int = 17) -> Path:
    """Write ``out_path`` (.onnx) from a dermlens checkpoint; input ``image`` (N, 3, H, W), output ``logits``.

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
    torch.onnx.export(model, (sample,), str(out_path), input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, opset_version=opset,
                      dynamo=False)
    proto = onnx.load(str(out_path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(info.to_dict())
    onnx.save(proto, str(out_path))
    return out_path
