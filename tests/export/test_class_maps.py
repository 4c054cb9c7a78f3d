"""The class_maps output added to an exported graph: the head's weights applied at every position."""

from __future__ import annotations

import numpy as np
import pytest

from dermlens.errors import ModelFileError
from dermlens.export.class_maps import add_class_maps

onnx = pytest.importorskip("onnx")  # the train extra; onnxruntime is a base dependency
ort = pytest.importorskip("onnxruntime")
TensorProto, helper, numpy_helper = onnx.TensorProto, onnx.helper, onnx.numpy_helper

N_CLASSES, CHANNELS = 3, 5


def tiny_classifier(head: str = "gemm", pool: str = "global") -> onnx.ModelProto:
    """image (N, 2, 8, 6) -> conv -> relu -> pooling -> flatten -> linear head -> logits."""
    rng = np.random.default_rng(0)
    weights = {"conv_w": rng.normal(size=(CHANNELS, 2, 3, 3)), "head_w": rng.normal(size=(N_CLASSES, CHANNELS)),
               "head_b": rng.normal(size=N_CLASSES), "head_wt": None}
    weights["head_wt"] = weights["head_w"].T.copy()
    initializers = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()]
    nodes = [helper.make_node("Conv", ["image", "conv_w"], ["conv"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["conv"], ["features"])]
    if pool == "global":
        nodes.append(helper.make_node("GlobalAveragePool", ["features"], ["pooled"]))
    else:
        nodes.append(helper.make_node("ReduceMean", ["features"], ["pooled"], axes=[2, 3], keepdims=1))
    nodes.append(helper.make_node("Flatten", ["pooled"], ["flat"], axis=1))
    if head == "gemm":
        nodes.append(helper.make_node("Gemm", ["flat", "head_w", "head_b"], ["logits"], transB=1))
    elif head == "matmul":
        nodes += [helper.make_node("MatMul", ["flat", "head_wt"], ["product"]),
                  helper.make_node("Add", ["product", "head_b"], ["logits"])]
    else:  # no linear head: the logits are the pooled features themselves
        nodes.append(helper.make_node("Identity", ["flat"], ["logits"]))
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 2, 8, 6])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", None])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    entry = model.metadata_props.add()
    entry.key, entry.value = "dermlens", "{}"
    return model


def run(model: onnx.ModelProto, names: list[str], batch: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(names, {"image": batch})


@pytest.mark.parametrize("head, pool", [("gemm", "global"), ("matmul", "global"), ("gemm", "reduce_mean")])
def test_class_maps_average_to_the_logits_without_the_bias(head, pool):
    original = tiny_classifier(head, pool)
    upgraded = add_class_maps(original)
    batch = np.random.default_rng(1).normal(size=(4, 2, 8, 6)).astype(np.float32)
    logits, maps = run(upgraded, ["logits", "class_maps"], batch)
    assert maps.shape == (4, N_CLASSES, 8, 6)
    bias = numpy_helper.to_array(next(i for i in original.graph.initializer if i.name == "head_b"))
    np.testing.assert_allclose(maps.mean(axis=(2, 3)) + bias, logits, atol=1e-5)
    # the original output is the same bit for bit, and the original proto was not modified
    assert np.array_equal(run(original, ["logits"], batch)[0], logits)
    assert [o.name for o in original.graph.output] == ["logits"]
    assert [o.name for o in upgraded.graph.output] == ["logits", "class_maps"]
    assert upgraded.metadata_props == original.metadata_props


def test_the_new_output_has_a_dynamic_batch_axis_and_adding_it_twice_changes_nothing():
    upgraded = add_class_maps(tiny_classifier())
    dims = upgraded.graph.output[-1].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and dims[1].dim_value == N_CLASSES
    assert [d.dim_value for d in dims[2:]] == [8, 6]  # known here from shape inference
    assert add_class_maps(upgraded) is upgraded
    assert [o.name for o in add_class_maps(upgraded).graph.output].count("class_maps") == 1
    onnx.checker.check_model(upgraded)


def test_a_graph_without_pooling_and_a_linear_head_is_refused_clearly():
    with pytest.raises(ModelFileError, match="linear head"):
        add_class_maps(tiny_classifier(head="none"))
    no_logits = tiny_classifier()
    no_logits.graph.output[0].name = "scores"
    with pytest.raises(ModelFileError, match="logits"):
        add_class_maps(no_logits)


def test_the_bundled_model_has_class_maps_that_explain_its_logits(ham_dir):
    from dermlens.data.images import load_rgb
    from dermlens.inference.onnx_model import OnnxModel
    from dermlens.inference.predictor import default_model_path

    model = OnnxModel.load(default_model_path())
    assert model.has_class_maps
    assert model.outputs[:2] == ("logits", "not_skin_score")  # the serving outputs come first, as before
    paths = sorted((ham_dir / "images").glob("*.jpg"))[:4]
    batch = model.preprocessing.normalize(np.stack([model.preprocessing.prepare(load_rgb(p)) for p in paths]))
    outputs = model.run_outputs(batch, ["logits", "class_maps"])
    logits, maps = outputs["logits"], outputs["class_maps"]
    assert maps.shape[:2] == (4, len(model.classes)) and maps.shape[2] > 1 and maps.shape[3] > 1
    proto = onnx.load(str(default_model_path()))
    bias = numpy_helper.to_array(next(i for i in proto.graph.initializer if i.name.endswith("classifier.bias")))
    mapping = model.info.get("output_map")  # a recalibrated model mixes maps and logits alike
    if mapping is not None:
        bias = np.asarray(mapping["matrix"]) @ bias + np.asarray(mapping["bias"])
    np.testing.assert_allclose(maps.mean(axis=(2, 3)) + bias, logits, atol=1e-4)
    # asking for the class maps does not change the logits
    assert np.array_equal(model.run(batch)[0], logits)
