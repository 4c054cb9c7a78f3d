"""Recalibrate an exported model on its own validation split: matrix scaling without retraining.

Training fits the calibration itself (`dermlens.training.finish`); this is for models exported before
matrix scaling existed, the bundled one among them. The model's logits on the validation images of its
split are calibrated as training does (a temperature, then `dermlens.inference.matrix_scaling` where it
pays, the decision's prior correction chosen again on the result), the held-out test split is
evaluated with the new calibration into a report, and a new file is written whose graph maps its
outputs: ``logits -> logits @ matrix.T + bias`` and the class maps by the same matrix, so heatmaps
explain the recalibrated answer. Its metadata gets temperature 1, the new decision bias, the test
figures and the abstention threshold read again off validation; the weights, the not-skin check and
its evidence are unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dermlens.data.dataset import LabelledImages
from dermlens.data.splits import Split
from dermlens.errors import ModelFileError
from dermlens.inference.onnx_model import CLASS_MAPS, METADATA_KEY, OnnxModel

LOGITS = "logits"
NOT_SKIN = "not_skin_score"
VALIDATION = "Validation split"


@dataclass
class SplitData:
    """What `dermlens.training.finish.calibrate_and_test` reads of a run's data."""

    dataset: LabelledImages
    split: Split
    targets: np.ndarray


def recalibrate_onnx(model_path: str | Path, dataset: LabelledImages, split: Split, out_path: str | Path,
                     report_dir: str | Path, *, card: dict | None = None, cache_dir: Path | None = None,
                     batch_size: int = 32, require_map: bool = True, refit_not_skin: bool = False,
                     extra_info: dict | None = None) -> dict:
    """Write ``out_path``: ``model_path`` recalibrated on ``split``'s validation images of ``dataset``
    (the split the model was trained on), with ``card`` (model-card facts) in place of the model's when
    given; -> the calibration record and the held-out metrics. A model recalibrated before gets a
    second map on top, and its metadata the two composed.

    Where matrix scaling does not pay, ``require_map=False`` keeps the graph and stores the fitted
    temperature instead of raising. ``refit_not_skin=True`` reads the not-skin threshold again off
    this graph's validation scores, at the quantile the model's evidence names (for a graph whose
    features changed, such as an int8 one). ``extra_info`` is merged into the metadata.

    >>> recalibrate_onnx("model.onnx", read_dataset("ham10000"), load_split("split.json", ham),
    ...                  "model-recalibrated.onnx", "recalibration")   # doctest: +SKIP
    """
    import onnx

    from dermlens.data.imagecache import load_images
    from dermlens.export.gates import abstention_evidence
    from dermlens.inference.matrix_scaling import compose_maps
    from dermlens.progress import track
    from dermlens.training.finish import calibrate_and_test

    model = OnnxModel.load(model_path)
    if tuple(dataset.classes) != model.classes:
        raise ModelFileError(f"{model_path} predicts {list(model.classes)}; the dataset's classes are "
                             f"{list(dataset.classes)}: recalibrate on the data the model was trained on")
    prep = model.preprocessing
    needed = np.concatenate([split.val, split.test])  # only these images are decoded
    row = np.zeros(len(dataset), np.int64)
    row[needed] = np.arange(len(needed))
    images = load_images([dataset.paths[i] for i in needed], prep, cache_dir)

    not_skin = refit_not_skin and model.has_not_skin_check
    names = model.serving_outputs if not_skin else [LOGITS]
    not_skin_scores: dict[str, np.ndarray] = {}

    def logits_of(indices: np.ndarray, label: str) -> np.ndarray:
        chunks = [row[indices[i:i + batch_size]] for i in range(0, len(indices), batch_size)]
        runs = [model.run_outputs(prep.normalize(np.asarray(images[chunk])), names)
                for chunk in track(chunks, label, total=len(chunks))]
        if not_skin:
            not_skin_scores[label] = np.concatenate([run[NOT_SKIN].reshape(-1) for run in runs])
        return np.concatenate([run[LOGITS] for run in runs])

    data = SplitData(dataset, split, np.asarray(dataset.targets))
    val_logits = logits_of(np.asarray(split.val), VALIDATION)
    rule = (model.info.get("metrics", {}) or {}).get("decision_rule", "prior")
    result = calibrate_and_test(logits_of, data, model.info.get("decision_bias"), Path(report_dir),
                                f"dermlens {model.info.get('backbone', 'model')} recalibrated",
                                val_logits=val_logits, rule=rule, calibration="matrix")
    proto = onnx.load(str(model_path))
    info = dict(model.info)
    info["decision_bias"] = None if result.decision_bias is None else list(result.decision_bias)
    if result.output_map is not None:
        matrix, bias = result.output_map
        proto = append_output_map(proto, matrix, bias)
        info["temperature"] = temperature = 1.0
        earlier = info.get("output_map")  # the graph maps the logits twice: the metadata says the whole
        total = (matrix, bias) if earlier is None else compose_maps((matrix, bias), (earlier["matrix"],
                                                                                   earlier["bias"]))
        info["output_map"] = {"matrix": total[0].tolist(), "bias": total[1].tolist()}
        val_logits = val_logits @ matrix.T + bias
    elif require_map:
        raise ModelFileError(f"matrix scaling does not improve {model_path} on this validation split "
                             f"(its cross-validated log-likelihood is no better, or a class has fewer than "
                             f"5 validation images); the model is left as it is")
    else:
        info["temperature"] = temperature = result.temperature
    earlier_calibration = (info.get("metrics") or {}).get("calibration")
    info["metrics"] = {**(info.get("metrics") or {}), **result.summary(), "decision_rule": rule}
    if earlier_calibration:  # the graph keeps the earlier calibration's map: so does its record
        info["metrics"]["calibration"] = {**info["metrics"]["calibration"], "earlier": earlier_calibration}
    gates = dict(info.get("gates") or {})
    evidence = dict(gates.get("evidence") or {})
    target_accuracy = (evidence.get("uncertain") or {}).get("target_accuracy", 0.9)
    abstention = abstention_evidence(val_logits, data.targets[split.val], temperature, result.decision_bias,
                                     target_accuracy)
    gates["min_confidence"] = abstention["threshold"]
    evidence["uncertain"] = abstention
    if not_skin:
        gates["not_skin_threshold"], evidence["not_skin"] = refitted_not_skin_threshold(
            not_skin_scores, evidence.get("not_skin") or {})
    gates["evidence"] = evidence
    info["gates"] = gates
    info.update(extra_info or {})
    if card is not None:
        info["card"] = card
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(info)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(out_path))
    return {"calibration": result.calibration, "metrics": result.metrics, "decision_bias": result.decision_bias}


def refitted_not_skin_threshold(scores: dict[str, np.ndarray], evidence: dict) -> tuple[float, dict]:
    """The not-skin threshold read again off ``scores[VALIDATION]`` at the quantile ``evidence`` names
    (0.99 if none), with the evidence updated: how many validation and test images it turns away."""
    from dermlens.inference.notskin import rejection_threshold

    quantile = float(evidence.get("threshold_quantile", 0.99))
    threshold = rejection_threshold(scores[VALIDATION], 1.0 - quantile)
    updated = {**evidence, "threshold_quantile": quantile, "threshold_read_off": "this graph's validation scores",
               "validation_rejected": float(np.mean(scores[VALIDATION] > threshold))}
    updated.pop("test_rejected", None)
    held_out = [label for label in scores if label != VALIDATION]
    if held_out:
        updated["test_rejected"] = float(np.mean(scores[held_out[0]] > threshold))
    return threshold, updated


def append_output_map(proto, matrix: np.ndarray, bias: np.ndarray):
    """A copy of ``proto`` whose ``logits`` output is ``logits @ matrix.T + bias`` and whose
    ``class_maps`` (if any) are mixed across classes by the same matrix."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    graph = model.graph
    outputs = {output.name for output in graph.output}
    if LOGITS not in outputs:
        raise ModelFileError(f"the model has no output named {LOGITS!r}; it is not a dermlens export")
    matrix = np.asarray(matrix, np.float32)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or np.shape(bias) != matrix.shape[:1]:
        raise ValueError(f"an output map needs a square matrix and one bias per class; got "
                         f"{matrix.shape} and {np.shape(bias)}")
    taken = {name for node in graph.node for name in (*node.input, *node.output)}
    taken |= {initializer.name for initializer in graph.initializer}
    prefix = next(f"output_map{n}" for n in range(1000) if not any(t.startswith(f"output_map{n}") for t in taken))
    _rename(graph, LOGITS, f"{prefix}_raw_logits")
    graph.initializer.extend([numpy_helper.from_array(np.ascontiguousarray(matrix.T), f"{prefix}_matrix_t"),
                              numpy_helper.from_array(np.asarray(bias, np.float32), f"{prefix}_bias")])
    graph.node.extend([
        helper.make_node("MatMul", [f"{prefix}_raw_logits", f"{prefix}_matrix_t"], [f"{prefix}_mixed"],
                         name=f"{prefix}_matmul"),
        helper.make_node("Add", [f"{prefix}_mixed", f"{prefix}_bias"], [LOGITS], name=f"{prefix}_add")])
    if CLASS_MAPS in outputs:
        _rename(graph, CLASS_MAPS, f"{prefix}_raw_class_maps")
        graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(matrix[:, :, None, None]),
                                                         f"{prefix}_map_kernel"))
        graph.node.append(helper.make_node("Conv", [f"{prefix}_raw_class_maps", f"{prefix}_map_kernel"],
                                           [CLASS_MAPS], name=f"{prefix}_maps", kernel_shape=[1, 1]))
    onnx.checker.check_model(model, full_check=False)
    return model


def _rename(graph, old: str, new: str) -> None:
    """Every use of the tensor ``old`` inside the graph now reads ``new`` (the graph output keeps ``old``)."""
    for node in graph.node:
        for position, name in enumerate(node.output):
            if name == old:
                node.output[position] = new
        for position, name in enumerate(node.input):
            if name == old:
                node.input[position] = new
