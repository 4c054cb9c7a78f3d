"""Float16 weight storage: half the file, the same graph, float32 answers within float16 rounding."""

from __future__ import annotations

import io

import numpy as np
import pytest


@pytest.fixture(scope="module")
def exported():
    import onnx
    import torch

    from dermlens.models import create_model

    torch.manual_seed(0)
    model = create_model("efficientnet_lite0", 7, pretrained=True).eval()
    buffer = io.BytesIO()
    torch.onnx.export(model, (torch.zeros(1, 3, 96, 128),), buffer, input_names=["image"],
                      output_names=["logits"], dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
                      opset_version=17, dynamo=False)
    return onnx.load_from_string(buffer.getvalue())


def _run(proto, images):
    import onnxruntime as ort

    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"image": images})[0]


def test_half_weights_halve_the_file_and_keep_the_answers(exported):
    from onnx import TensorProto

    from dermlens.export.halfweights import store_weights_fp16
    from dermlens.inference.calibration import softmax

    half = store_weights_fp16(exported)
    assert len(half.SerializeToString()) < 0.55 * len(exported.SerializeToString())
    stored = {i.name: i.data_type for i in half.graph.initializer}
    assert TensorProto.FLOAT16 in stored.values()
    casts = [n for n in half.graph.node if n.op_type == "Cast" and n.name.endswith("__to_fp32")]
    assert casts and all(n.input[0] in stored and stored[n.input[0]] == TensorProto.FLOAT16 for n in casts)
    images = np.random.default_rng(0).normal(size=(4, 3, 96, 128)).astype(np.float32)
    full_logits, half_logits = _run(exported, images), _run(half, images)
    assert half_logits.dtype == np.float32
    assert not np.array_equal(full_logits, half_logits)  # the weights really were rounded
    np.testing.assert_allclose(softmax(half_logits), softmax(full_logits), atol=2e-3)
    assert (softmax(half_logits).argmax(1) == softmax(full_logits).argmax(1)).all()


def test_small_tensors_stay_float32(exported):
    from onnx import TensorProto, numpy_helper

    from dermlens.export.halfweights import store_weights_fp16

    half = store_weights_fp16(exported, min_elements=1024)
    still_float32 = [numpy_helper.to_array(i).size for i in half.graph.initializer if i.data_type == TensorProto.FLOAT]
    assert still_float32 and max(still_float32) < 1024
