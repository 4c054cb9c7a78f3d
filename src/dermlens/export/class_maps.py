"""Grad-CAM inside the exported graph: one more output, ``class_maps``, so serving needs no torch.

A dermlens classifier is backbone -> global average pooling -> (dropout) -> linear head. For that
architecture Grad-CAM at the last feature map A (C channels, h x w) is the class activation map of
Zhou et al. (2016): the gradient of logit c with respect to A_k is w_ck / (h w) at every position, so
Grad-CAM_c = ReLU(sum_k w_ck A_k) up to a positive factor. The graph surgery here adds that sum, a 1x1
convolution without bias of the tensor entering the pooling with the head's weight reshaped to
(n_classes, C, 1, 1), as the output ``class_maps`` (N, n_classes, h, w), before any ReLU (the caller
applies it; `dermlens.explain.heatmap.class_heatmap`).

The existing outputs are untouched: their nodes and weights are the same, and on the bundled model
they are bit-identical before and after (`scripts/add_class_maps.py` checks this). ONNX Runtime runs
the whole graph whichever outputs are asked for, but the 1x1 convolution is about 0.1% of a pass and
an output not asked for is never copied out, so prediction speed does not change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dermlens.errors import ModelFileError
from dermlens.inference.onnx_model import CLASS_MAPS

if TYPE_CHECKING:
    import onnx

LOGITS = "logits"
FREE_SIZE = ("map_height", "map_width")
_RESHAPES = ("Flatten", "Reshape", "Squeeze", "Identity", "Dropout")


def add_class_maps(proto: onnx.ModelProto, head_output: str = LOGITS) -> onnx.ModelProto:
    """A copy of ``proto`` with the output ``class_maps``; a model that already has it is returned as is.

    ``head_output`` names the output of the linear head whose weights make the maps (an ensemble's
    primary member; `dermlens.export.onnx`).

    >>> import onnx                                                      # doctest: +SKIP
    >>> onnx.save(add_class_maps(onnx.load("model.onnx")), "model.onnx")  # doctest: +SKIP
    """
    import onnx
    from onnx import helper, numpy_helper

    if any(output.name == CLASS_MAPS for output in proto.graph.output):
        return proto
    if not any(output.name == head_output for output in proto.graph.output):
        raise ModelFileError(f"the model has no output named {head_output!r}; it is not a dermlens export")
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    graph = model.graph
    producers = {output: node for node in graph.node for output in node.output}
    head = _head_node(producers, head_output)
    features, pool = _pooled_input(head, producers, graph)
    weight = _head_weight(head, graph, producers)  # (n_classes, C): logits = pooled @ weight.T + bias
    if weight.ndim != 2:
        raise ModelFileError(f"the head weight has shape {weight.shape}; expected (n_classes, channels)")

    prefix = _unique_prefix(graph)
    kernel = numpy_helper.from_array(np.ascontiguousarray(weight[:, :, None, None], np.float32),
                                     f"{prefix}_weight")
    graph.initializer.append(kernel)
    conv = helper.make_node("Conv", [features, kernel.name], [CLASS_MAPS], name=f"{prefix}_conv",
                            kernel_shape=[1, 1])
    # the new node goes right after the pooling it shares its input with (the graph stays sorted)
    position = list(graph.node).index(pool) + 1
    graph.node.insert(position, conv)
    height, width = _spatial_size(model, features)
    graph.output.append(helper.make_tensor_value_info(CLASS_MAPS, onnx.TensorProto.FLOAT,
                                                      [_batch_dim(graph), weight.shape[0], height, width]))
    onnx.checker.check_model(model, full_check=False)
    return model


def _head_node(producers: dict, head_output: str) -> onnx.NodeProto:
    """The Gemm or MatMul whose result is ``head_output`` (directly or through a bias Add)."""
    node = producers.get(head_output)
    if node is None:
        raise ModelFileError(f"no node computes {head_output!r}; class maps need a linear head")
    while node.op_type == "Identity" and node.input[0] in producers:
        node = producers[node.input[0]]
    if node.op_type == "Add":
        node = next((producers[i] for i in node.input if i in producers
                     and producers[i].op_type in ("Gemm", "MatMul")), node)
    if node.op_type not in ("Gemm", "MatMul"):
        raise ModelFileError(f"{head_output!r} comes from a {node.op_type} node, not a linear head (Gemm/MatMul); "
                             f"class maps need backbone -> global average pooling -> linear head")
    return node


def _pooled_input(head, producers: dict, graph) -> tuple[str, onnx.NodeProto]:
    """The feature map entering the global average pooling that feeds ``head``, and that pooling node."""
    from onnx import helper

    name = head.input[0]
    while name in producers and producers[name].op_type in _RESHAPES:
        name = producers[name].input[0]
    pool = producers.get(name)
    if pool is not None and pool.op_type == "GlobalAveragePool":
        return pool.input[0], pool
    if pool is not None and pool.op_type == "ReduceMean":
        attributes = {a.name: helper.get_attribute_value(a) for a in pool.attribute}
        axes = attributes.get("axes")
        if axes is None and len(pool.input) > 1:
            axes = _constant(pool.input[1], producers, graph)
            axes = None if axes is None else axes.tolist()
        if axes is not None and sorted(int(a) % 4 for a in axes) == [2, 3]:
            return pool.input[0], pool
    found = "nothing" if pool is None else f"a {pool.op_type} node"
    raise ModelFileError(f"the linear head reads {found}, not a global average pooling of a feature map; "
                         f"class maps need backbone -> global average pooling -> linear head")


def _head_weight(head, graph, producers: dict) -> np.ndarray:
    """The head's weight as (n_classes, channels), with Gemm's alpha and transposition applied."""
    from onnx import helper

    raw = _constant(head.input[1], producers, graph)
    if raw is None:
        raise ModelFileError("the linear head's weight is not a constant of the graph")
    if head.op_type == "MatMul":
        return raw.T
    attributes = {a.name: helper.get_attribute_value(a) for a in head.attribute}
    if attributes.get("transA", 0):
        raise ModelFileError("the linear head transposes its input (Gemm transA=1); not supported")
    weight = raw if attributes.get("transB", 0) else raw.T
    return weight * float(attributes.get("alpha", 1.0))


def _constant(name: str, producers: dict, graph) -> np.ndarray | None:
    """The value of an initializer or a Constant node (through Identity/Transpose), else None."""
    from onnx import helper, numpy_helper

    for initializer in graph.initializer:
        if initializer.name == name:
            return numpy_helper.to_array(initializer)
    node = producers.get(name)
    if node is None:
        return None
    if node.op_type == "Constant":
        return numpy_helper.to_array(helper.get_attribute_value(node.attribute[0]))
    if node.op_type in ("Identity", "Transpose"):
        value = _constant(node.input[0], producers, graph)
        if value is None or node.op_type == "Identity":
            return value
        permutation = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "perm"), None)
        return np.transpose(value, permutation)
    return None


def _unique_prefix(graph) -> str:
    taken = {i.name for i in graph.initializer} | {n.name for n in graph.node}
    prefix, n = "dermlens_class_maps", 1
    while f"{prefix}_weight" in taken or f"{prefix}_conv" in taken:
        prefix, n = f"dermlens_class_maps_{n}", n + 1
    return prefix


def _batch_dim(graph) -> str | int:
    """The name (or size) of the batch axis of ``logits``, so the new output is dynamic in the same way."""
    for output in graph.output:
        if output.name == LOGITS:
            dims = output.type.tensor_type.shape.dim
            if not dims:
                break
            return dims[0].dim_value if dims[0].HasField("dim_value") else dims[0].dim_param or "batch"
    return "batch"


def _spatial_size(model, features: str) -> tuple[int | str, int | str]:
    """The feature map's height and width from ONNX shape inference, else named free axes.

    ("Same" padding computed at run time, as in timm's TensorFlow ports, leaves them unknown.)
    """
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except (onnx.shape_inference.InferenceError, ValueError):  # the output still comes, with free h and w
        return FREE_SIZE
    for info in inferred.graph.value_info:
        if info.name == features:
            dims = info.type.tensor_type.shape.dim
            if len(dims) == 4:
                height, width = (d.dim_value if d.HasField("dim_value") else None for d in dims[2:])
                return height or FREE_SIZE[0], width or FREE_SIZE[1]
    return FREE_SIZE
