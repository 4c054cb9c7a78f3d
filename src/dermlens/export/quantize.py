"""int8 quantisation of an exported model, calibrated and checked on its own split.

The convolutional trunk (every node from the first convolution to the global average pools) gets
static int8 quantisation in ONNX Runtime's QDQ form: weights int8 per output channel, activations
uint8 with a scale and zero point read off training images (MinMax). ONNX Runtime's x86 kernels are
fastest for uint8 activations with int8 weights (on this 2-core machine: EfficientNet-Lite0 at
256x192, 6.0 ms float -> 3.9 ms int8 per image; symmetric int8 activations ran slower than float).
What follows the pools stays float: the classifier, the class maps, the output map and the not-skin
density, so the graph's outputs keep their meaning.

Quantisation moves the logits and the not-skin features a little, so the result is recalibrated on
the split's validation images like `dermlens recalibrate` does (`dermlens.export.recalibrate`), the
not-skin threshold is read again off validation, and the test split is reported; the metadata records
the quantisation and how far the int8 answers are from the float ones.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from dermlens.data.dataset import LabelledImages
from dermlens.data.splits import Split
from dermlens.errors import ModelFileError

#: operators of the trunk that ONNX Runtime runs in int8 (others in it stay float)
QUANTIZED_OPS = ("Conv", "Add", "Clip", "Relu", "MaxPool")


def trunk_nodes(graph) -> list[str]:
    """Names of the nodes between the first convolutions and the inputs of the global average pools:
    the backbone, without anything that reads the image before it (an ensemble member's own resize
    and normalisation) or that reads the pooled or tapped features after it."""
    producer = {output: node for node in graph.node for output in node.output}
    ancestors: set[str] = set()
    stack = [name for node in graph.node if node.op_type == "GlobalAveragePool" for name in node.input]
    while stack:
        node = producer.get(stack.pop())
        if node is None or node.name in ancestors:
            continue
        ancestors.add(node.name)
        stack.extend(node.input)
    after_conv: set[str] = set()
    reached: set[str] = set()
    for node in graph.node:  # ONNX graphs are topologically sorted
        if node.op_type == "Conv" or any(name in reached for name in node.input):
            after_conv.add(node.name)
            reached.update(node.output)
    return [node.name for node in graph.node
            if node.name in ancestors and node.name in after_conv and node.op_type in QUANTIZED_OPS]


def quantize_trunk(model_path: str | Path, out_path: str | Path, batches: Iterator[np.ndarray]) -> Path:
    """Write ``out_path``: ``model_path`` with its trunk in static int8, activation ranges read off
    ``batches`` (float32 normalised images, as the model takes them)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process
    import onnx

    class Batches(CalibrationDataReader):
        def get_next(self) -> dict | None:
            batch = next(batches, None)
            return None if batch is None else {"image": np.ascontiguousarray(batch, np.float32)}

    with tempfile.TemporaryDirectory(prefix="dermlens-quantize-") as work:
        prepared = Path(work) / "prepared.onnx"  # shapes inferred and the graph simplified first, as advised
        quant_pre_process(str(model_path), str(prepared), skip_optimization=False)
        nodes = trunk_nodes(onnx.load(str(prepared)).graph)
        if not nodes:
            raise ModelFileError(f"{model_path} has no convolutional trunk to quantize")
        quantize_static(str(prepared), str(out_path), Batches(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, nodes_to_quantize=nodes,
                        extra_options={"ActivationSymmetric": False})
    return Path(out_path)


def quantize_onnx(model_path: str | Path, dataset: LabelledImages, split: Split, out_path: str | Path,
                  report_dir: str | Path, *, n_images: int = 400, seed: int = 0, card: dict | None = None,
                  cache_dir: Path | None = None) -> dict:
    """Write ``out_path``: ``model_path`` with an int8 trunk, calibrated on ``n_images`` of the split's
    training images, recalibrated on its validation images and reported on its test images
    (`dermlens.export.recalibrate.recalibrate_onnx`); -> that function's record plus ``agreement``
    (how the int8 model's test answers compare with the float model's).

    >>> quantize_onnx("model.onnx", read_dataset("ham10000"), load_split("split.json", ham),
    ...               "model-int8.onnx", "quantization")   # doctest: +SKIP
    """
    from dermlens.data.imagecache import load_images
    from dermlens.export.recalibrate import recalibrate_onnx
    from dermlens.inference.onnx_model import OnnxModel
    from dermlens.progress import track

    model = OnnxModel.load(model_path)
    if model.info.get("quantization"):
        raise ModelFileError(f"{model_path} is already quantized to int8; quantize the float model it came from")
    if tuple(dataset.classes) != model.classes:
        raise ModelFileError(f"{model_path} predicts {list(model.classes)}; the dataset's classes are "
                             f"{list(dataset.classes)}: quantize on the data the model was trained on")
    if n_images < 1:
        raise ValueError("quantization needs at least one calibration image")
    train = np.asarray(split.train)
    if not len(train):
        raise ModelFileError("the split has no training images to calibrate the quantisation on")
    chosen = np.sort(np.random.default_rng(seed).choice(train, min(n_images, len(train)), replace=False))
    prep = model.preprocessing
    images = load_images(tuple(dataset.paths[i] for i in chosen), prep, cache_dir)
    batches = (prep.normalize(np.asarray(images[i:i + 1])) for i in track(range(len(images)),
                                                                          "Calibrating int8 ranges"))
    with tempfile.TemporaryDirectory(prefix="dermlens-quantize-") as work:
        quantized = quantize_trunk(model_path, Path(work) / "int8.onnx", batches)
        agreement = _agreement(model, OnnxModel.load(quantized), dataset, split, cache_dir)
        record = {"method": "static int8 (QDQ) of the convolutional trunk: int8 weights per output channel, "
                            "uint8 activations (MinMax); classifier, class maps and not-skin density float",
                  "calibration_images": int(len(chosen)), "seed": seed, "float_agreement": agreement}
        result = recalibrate_onnx(quantized, dataset, split, out_path, report_dir, card=card,
                                  cache_dir=cache_dir, require_map=False, refit_not_skin=True,
                                  extra_info={"quantization": record})
    return {**result, "agreement": agreement}


def _agreement(reference, quantized, dataset: LabelledImages, split: Split, cache_dir: Path | None,
               batch_size: int = 32) -> dict:
    """How the int8 graph's answers on the held-out images compare with the float graph's, before any
    recalibration: the share with the same most probable class and the largest probability change."""
    from dermlens.data.imagecache import load_images
    from dermlens.inference.calibration import softmax
    from dermlens.progress import track

    held_out = np.asarray(split.test) if len(split.test) else np.asarray(split.val)
    prep = reference.preprocessing
    images = load_images(tuple(dataset.paths[i] for i in held_out), prep, cache_dir)
    same, largest = 0, 0.0
    for start in track(range(0, len(images), batch_size), "Comparing int8 with float",
                       total=-(-len(images) // batch_size)):
        batch = prep.normalize(np.asarray(images[start:start + batch_size]))
        before = softmax(reference.logits(batch), reference.temperature)
        after = softmax(quantized.logits(batch), quantized.temperature)
        same += int((before.argmax(axis=1) == after.argmax(axis=1)).sum())
        largest = max(largest, float(np.abs(before - after).max()))
    return {"images": int(len(held_out)), "same_top_class": same / max(len(held_out), 1),
            "max_probability_change": round(largest, 4)}
