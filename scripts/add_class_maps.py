"""Add the ``class_maps`` output (Grad-CAM without torch) to an exported dermlens model, in place.

    python scripts/add_class_maps.py MODEL.onnx [--out NEW.onnx] [--images FOLDER] [--limit 64]

Models exported before `dermlens.export.onnx.export_onnx` added the output themselves get it here; the
metadata and every existing output stay as they were. The script then checks with ONNX Runtime that
``logits`` and ``not_skin_score`` are bit-identical before and after, on random inputs and on the
images of ``--images`` (preprocessed as the predictor does), and refuses to write the file otherwise.

This was run once on the bundled model, ``src/dermlens/assets/default-model.onnx``, with
``--images ../shared/datasets/ham10000/images --limit 256``: bit-identical outputs on those 256 images
(in batches of 16, and the first 16 one at a time) and on 4 random inputs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def outputs_of(model_bytes: bytes, batches: list[np.ndarray], names: list[str]) -> list[list[np.ndarray]]:
    import onnxruntime as ort

    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    return [session.run(names, {"image": batch}) for batch in batches]


def test_batches(model_path: Path, images: Path | None, limit: int) -> tuple[list[np.ndarray], int]:
    """Random inputs, the images in batches of 16, the first 16 alone; and how many images."""
    from dermlens.data.images import load_rgb
    from dermlens.data.readers import IMAGE_EXTENSIONS
    from dermlens.inference.onnx_model import OnnxModel

    preprocessing = OnnxModel.load(model_path).preprocessing
    shape = (3, preprocessing.height, preprocessing.width)
    batches = [np.random.default_rng(0).normal(size=(4, *shape)).astype(np.float32)]
    pixels = []
    if images is not None:
        files = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)[:limit]
        pixels = [preprocessing.prepare(load_rgb(path)) for path in files]
        for start in range(0, len(pixels), 16):
            batches.append(preprocessing.normalize(np.stack(pixels[start:start + 16])))
        if len(batches) > 1:  # single images too: ONNX Runtime may take other kernel paths
            batches += [batches[1][i:i + 1] for i in range(len(batches[1]))]
    return batches, len(pixels)


def main() -> int:
    import onnx

    from dermlens.export.class_maps import add_class_maps
    from dermlens.inference.onnx_model import CLASS_MAPS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--out", type=Path, help="where to write (default: replace MODEL)")
    parser.add_argument("--images", type=Path, help="a folder of images to compare the outputs on")
    parser.add_argument("--limit", type=int, default=64, help="at most this many images from --images")
    args = parser.parse_args()

    original = onnx.load(str(args.model))
    if any(output.name == CLASS_MAPS for output in original.graph.output):
        print(f"{args.model} already has class_maps; nothing to do")
        return 0
    upgraded = add_class_maps(original)
    names = [output.name for output in original.graph.output]
    batches, images = test_batches(args.model, args.images, args.limit)
    before = outputs_of(original.SerializeToString(), batches, names)
    after = outputs_of(upgraded.SerializeToString(), batches, names)
    if not all(np.array_equal(a, b) for old, new in zip(before, after) for a, b in zip(old, new)):
        print(f"the outputs {names} changed; {args.model} left as it was", file=sys.stderr)
        return 1
    out = args.out or args.model
    onnx.save(upgraded, str(out))
    print(f"wrote {out}: outputs {[o.name for o in upgraded.graph.output]}; {names} bit-identical on "
          f"{len(batches[0])} random inputs and {images} images (in batches, and 16 of them alone)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
