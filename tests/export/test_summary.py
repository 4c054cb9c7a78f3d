"""The model summary read from an ONNX graph: layers grouped by module, shapes with batch 1, parameters."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dermlens.errors import ModelFileError
from dermlens.export.summary import model_summary

onnx = pytest.importorskip("onnx")  # the train extra

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "src" / "dermlens" / "assets" / "default-model.onnx"


@pytest.fixture(scope="module")
def summary():
    """The bundled EfficientNet-Lite0 (real weights, 7 HAM10000 classes, not-skin output)."""
    return model_summary(DEFAULT_MODEL)


def test_the_bundled_model_has_the_shapes_and_parameters_of_its_graph(summary):
    graph = onnx.load(str(DEFAULT_MODEL)).graph
    # the bundled model is int8 (`dermlens.export.quantize`): scales and zero points are not weights,
    # nor are the int64 shapes that its preparation folded into constants (biases are int32)
    quantization = {name for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
                    for name in n.input[1:]}
    initializers = sum(int(np.prod(i.dims)) for i in graph.initializer
                       if int(np.prod(i.dims)) > 1 and i.name not in quantization
                       and i.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.INT8, onnx.TensorProto.INT32))
    assert summary.inputs == {"image": (1, 3, 192, 256)}
    assert summary.outputs["logits"] == (1, 7)
    assert summary.outputs["class_maps"] == (1, 7, 6, 8)
    assert summary.parameters == initializers  # every weight counted once
    assert 3_300_000 < summary.parameters < 3_400_000  # EfficientNet-Lite0 with its batch norms folded
    # 49 in the network, one making the class maps and one mixing them as the recalibration mixes the
    # logits (`dermlens.export.recalibrate`: a MatMul and an Add, which the int8 preparation fused into
    # a second Gemm); the not-skin check has its own MatMul
    assert summary.layers["Conv"] == 51 and summary.layers["Gemm"] == 2 and summary.layers["MatMul"] == 1
    assert all(r.output_shape is not None and all(isinstance(d, int) for d in r.output_shape) for r in summary.rows)


def test_rows_are_grouped_by_module_in_graph_order(summary):
    names = [g.name for g in summary.groups]
    assert names[0] == "backbone.conv_stem"
    assert "backbone.blocks.2.0" in names and "classifier" in names
    assert len(summary.groups) < 40 < len(summary.rows)  # readable: modules, not 100+ nodes
    block = summary.groups[names.index("backbone.blocks.1.1")]
    assert "Conv x3" in block.op_type and block.output_shape == (1, 24, 48, 64)
    head = summary.groups[names.index("classifier")]
    assert head.parameters == 1280 * 7 + 7 and head.output_shape == (1, 7)
    assert sum(g.parameters for g in summary.groups) == summary.parameters


def test_text_and_json(summary):
    text = summary.to_text()
    assert "backbone.blocks.6.0" in text and "(1, 320, 6, 8)" in text
    assert f"parameters: {summary.parameters:,}" in text
    assert "image (1, 3, 192, 256)" in text
    as_json = json.loads(json.dumps(summary.to_dict()))
    assert as_json["inputs"] == {"image": [1, 3, 192, 256]}
    assert as_json["parameters"] == summary.parameters
    assert len(as_json["rows"]) == len(summary.rows)
    assert as_json["groups"][0]["name"] == "backbone.conv_stem"


def test_a_graph_without_module_paths_lists_each_node(tmp_path):
    helper, TensorProto = onnx.helper, onnx.TensorProto
    weight = onnx.numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    head = onnx.numpy_helper.from_array(np.ones((2, 4), np.float32), "h")
    nodes = [helper.make_node("Conv", ["image", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "h"], ["logits"], name="head", transB=1)]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                                           ["batch", 3, 8, 10])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])],
                              [weight, head])
    path = tmp_path / "tiny.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    summary = model_summary(path)
    assert [g.name for g in summary.groups] == ["conv", "relu", "pool", "flatten", "head"]
    assert summary.groups[0].output_shape == (1, 4, 8, 10) and summary.groups[0].parameters == 108
    assert summary.outputs == {"logits": (1, 2)} and summary.parameters == 116


def test_missing_and_foreign_files_are_clear_errors(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        model_summary(tmp_path / "absent.onnx")
    (tmp_path / "notes.onnx").write_text("not a model")
    with pytest.raises(ModelFileError, match="not an ONNX model"):
        model_summary(tmp_path / "notes.onnx")
