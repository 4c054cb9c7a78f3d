"""Store an ONNX graph's large weights as float16 on disk, computed in float32 as before.

Each float32 initializer of at least ``min_elements`` values becomes a float16 initializer and a
``Cast`` to float32 with the original name, so every node reads what it read before. ONNX Runtime
folds those casts into float32 constants when it opens the model (constant folding, the default
optimisation level), so the graph runs at the same speed in the same precision; only the weights are
rounded, to 11 significant bits (relative error <= 2^-11). The file is half the size, which is what
makes a two-member ensemble fit the bundled model's size budget.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx


def store_weights_fp16(proto: onnx.ModelProto, min_elements: int = 1024) -> onnx.ModelProto:
    """A copy of ``proto`` with its large float32 weights stored as float16 (see the module)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    graph = model.graph
    casts, kept = [], []
    for initializer in graph.initializer:
        values = numpy_helper.to_array(initializer)
        if initializer.data_type != onnx.TensorProto.FLOAT or values.size < min_elements:
            kept.append(initializer)
            continue
        if np.abs(values).max(initial=0.0) > np.finfo(np.float16).max:
            kept.append(initializer)  # out of float16's range: keep it exact
            continue
        half = numpy_helper.from_array(values.astype(np.float16), f"{initializer.name}__fp16")
        kept.append(half)
        casts.append(helper.make_node("Cast", [half.name], [initializer.name], to=onnx.TensorProto.FLOAT,
                                      name=f"{initializer.name}__to_fp32"))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)  # the casts read only initializers: first keeps the graph sorted
    onnx.checker.check_model(model, full_check=False)
    return model
