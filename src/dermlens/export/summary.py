"""What an exported network is made of, read from its ONNX graph alone: layers, shapes, parameters.

The seed paper showed its network in Netron; this is the same information as a table for the command
line (`ModelSummary.to_text`) and JSON for the API (`ModelSummary.to_dict`). Output shapes come from
``onnx.shape_inference`` with batch 1; where inference cannot follow the graph (timm's dynamic "same"
padding computes pad sizes at run time) one pass of ONNX Runtime over a blank image fills them in.
Nodes that only compute shapes or constants are counted, not listed; the rest are grouped by the
module they were exported from (``backbone.blocks.2.0``), so an EfficientNet reads as about 25 rows.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from dermlens.errors import ModelFileError

Shape = tuple[int | str, ...]

# ops whose output describes a tensor's shape, not its values: what follows them is shape arithmetic
SHAPE_OPS = frozenset({"Shape", "Size"})
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
OPS_WIDTH = 48  # the ops column of the text table; to_dict has them all


@dataclass(frozen=True)
class LayerRow:
    """One node (or one module's nodes) of the graph."""

    name: str
    op_type: str
    output_shape: Shape | None
    parameters: int

    def to_dict(self) -> dict:
        return {"name": self.name, "op_type": self.op_type,
                "output_shape": None if self.output_shape is None else list(self.output_shape),
                "parameters": self.parameters}


@dataclass
class ModelSummary:
    """Rows per node and per module, and the totals."""

    rows: list[LayerRow]  # every node that computes on the image, in graph order
    groups: list[LayerRow]  # consecutive rows from the same module merged: what `to_text` lists
    parameters: int
    layers: dict[str, int]  # op type -> number of nodes, over `rows`
    inputs: dict[str, Shape | None]
    outputs: dict[str, Shape | None]
    hidden_nodes: int  # shape arithmetic and constants, not listed

    def to_dict(self) -> dict:
        def shapes(named: dict) -> dict:
            return {k: None if v is None else list(v) for k, v in named.items()}

        return {"inputs": shapes(self.inputs), "outputs": shapes(self.outputs), "parameters": self.parameters,
                "layers": self.layers, "hidden_nodes": self.hidden_nodes,
                "groups": [g.to_dict() for g in self.groups], "rows": [r.to_dict() for r in self.rows]}

    def to_text(self) -> str:
        """A table for the command line, one row per module."""
        width = max([len(g.name) for g in self.groups] + [5])
        ops = [g.op_type if len(g.op_type) <= OPS_WIDTH else g.op_type[:OPS_WIDTH - 3] + "..." for g in self.groups]
        ops_width = max([len(o) for o in ops] + [3])
        lines = [f"inputs:  {_named(self.inputs)}", "",
                 f"{'layer':<{width}}  {'ops':<{ops_width}}  {'output shape':<22}  {'parameters':>11}"]
        for group, op_types in zip(self.groups, ops):
            lines.append(f"{group.name:<{width}}  {op_types:<{ops_width}}  {_shape(group.output_shape):<22}  "
                         f"{group.parameters:>11,}")
        layers = ", ".join(f"{op} {n}" for op, n in sorted(self.layers.items(), key=lambda item: -item[1]))
        lines += ["", f"outputs: {_named(self.outputs)}", f"parameters: {self.parameters:,}",
                  f"layers: {layers}", f"({self.hidden_nodes} nodes computing shapes or constants not listed)"]
        return "\n".join(lines)


def _shape(shape: Shape | None) -> str:
    return "?" if shape is None else "(" + ", ".join(str(d) for d in shape) + ")"


def _named(shapes: dict[str, Shape | None]) -> str:
    return "; ".join(f"{name} {_shape(shape)}" for name, shape in shapes.items())


def model_summary(onnx_model: Path) -> ModelSummary:
    """Summarise an ``.onnx`` file's layers, output shapes (batch 1) and parameter counts.

    >>> print(model_summary(Path("model.onnx")).to_text())   # doctest: +SKIP
    """
    import onnx

    path = Path(onnx_model)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    try:
        model = onnx.load(str(path))
    except Exception as error:  # noqa: BLE001 - protobuf raises its own types
        raise ModelFileError(f"{path} is not an ONNX model: {error}") from None
    graph = model.graph
    weights = {init.name: _size(init.dims) for init in graph.initializer}
    weights.update({out: _size(attr.t.dims) for node in graph.node if node.op_type == "Constant"
                    for attr in node.attribute if attr.name == "value" for out in node.output})
    # an int8 graph (`dermlens.export.quantize`) stores a weight as int8 read through DequantizeLinear:
    # the weight counts as a parameter of the layer using it, its scales and zero points do not
    weights.update({node.output[0]: weights[node.input[0]] for node in graph.node
                    if node.op_type == "DequantizeLinear" and node.input[0] in weights})
    inputs = [i for i in graph.input if i.name not in weights]
    data = {i.name for i in inputs}
    computing = []
    for node in graph.node:
        if node.op_type not in SHAPE_OPS and any(name in data for name in node.input):
            data.update(node.output)
            if node.op_type not in QDQ_OPS:  # rounding activations to int8 and back is not a layer
                computing.append(node)
    shapes = _shapes(model, [n.output[0] for n in computing] + [o.name for o in graph.output])
    counted: set[str] = set()
    rows = []
    for index, node in enumerate(computing):
        used = [n for n in node.input if weights.get(n, 0) > 1 and n not in counted]  # scalars are settings
        counted.update(used)
        rows.append(LayerRow(node.name or f"{node.op_type}_{index}", node.op_type, shapes.get(node.output[0]),
                             sum(weights[n] for n in used)))
    return ModelSummary(rows=rows, groups=_groups(rows), parameters=sum(r.parameters for r in rows),
                        layers=dict(Counter(r.op_type for r in rows)),
                        inputs={i.name: shapes.get(i.name) for i in inputs},
                        outputs={o.name: shapes.get(o.name) for o in graph.output},
                        hidden_nodes=len(graph.node) - len(computing))


def _size(dims) -> int:
    size = 1
    for d in dims:
        size *= int(d)
    return size


def _dims(value_info) -> Shape | None:
    tensor = value_info.type.tensor_type
    if not tensor.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim)


def _known(shape: Shape | None) -> bool:
    return shape is not None and all(isinstance(d, int) for d in shape)


def _shapes(model, wanted: list[str]) -> dict[str, Shape | None]:
    """Shapes with batch 1 by shape inference; what it cannot follow, from one ONNX Runtime pass."""
    import onnx

    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    initializers = {init.name for init in fixed.graph.initializer}
    for value in fixed.graph.input:
        dims = value.type.tensor_type.shape.dim
        if value.name not in initializers and dims and not dims[0].HasField("dim_value"):
            dims[0].Clear()
            dims[0].dim_value = 1
    try:
        inferred = onnx.shape_inference.infer_shapes(fixed, data_prop=True)
    except Exception:  # noqa: BLE001 - an unusual graph still gets a summary, with fewer shapes
        inferred = fixed
    shapes = {v.name: _dims(v) for v in [*inferred.graph.input, *inferred.graph.value_info]}
    for output in inferred.graph.output:  # the declared output shapes keep their symbolic batch
        shapes.setdefault(output.name, _dims(output))
    missing = [name for name in dict.fromkeys(wanted) if not _known(shapes.get(name))]
    if missing:
        shapes.update(_run_shapes(fixed, missing))
    return shapes


def _run_shapes(model, names: list[str]) -> dict[str, Shape]:
    """Shapes of ``names`` from one run on zeros; empty if the inputs are not fully known or the run fails."""
    import numpy as np
    import onnx

    try:
        import onnxruntime as ort
    except ImportError:
        return {}
    initializers = {init.name for init in model.graph.initializer}
    types = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.INT64: np.int64, onnx.TensorProto.UINT8: np.uint8}
    feeds = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        shape, dtype = _dims(value), types.get(value.type.tensor_type.elem_type)
        if not _known(shape) or dtype is None:
            return {}
        feeds[value.name] = np.zeros(shape, dtype)
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    declared = {o.name for o in probe.graph.output}
    probe.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in declared)
    try:
        session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
        return {name: tuple(int(d) for d in np.shape(value)) for name, value in zip(names, session.run(names, feeds))}
    except Exception:  # noqa: BLE001 - shapes stay unknown ("?") rather than the summary failing
        return {}


def _segments(name: str) -> list[str] | None:
    """The module path of a node exported from torch: ``/model/backbone/blocks/blocks.2/blocks.2.0/conv_pwl/Conv``
    -> ``[model, backbone, blocks.2.0, conv_pwl]``; None for a name that is not a path."""
    if not name.startswith("/"):
        return None
    parts = [p for p in name.strip("/").split("/")[:-1] if p]
    return [p for i, p in enumerate(parts) if not (i + 1 < len(parts) and parts[i + 1].startswith(p + "."))]


def _module(segments: list[str] | None, name: str) -> str:
    """The deepest numbered block (``backbone.blocks.2.0``), else the first two levels (``backbone.bn1``)."""
    if segments is None:
        return name
    if not segments:
        return "(top level)"
    numbered = [i for i, p in enumerate(segments) if re.search(r"\.\d+$", p)]
    return ".".join(segments[:numbered[-1] + 1 if numbered else 2])


def _groups(rows: list[LayerRow]) -> list[LayerRow]:
    paths = [_segments(row.name) for row in rows]
    firsts = {p[0] for p in paths if p is not None and len(p) > 1}
    if len(firsts) == 1:  # the wrapper every module sits in ("model"): it tells nothing
        paths = [p[1:] if p and p[0] in firsts else p for p in paths]
    groups: list[tuple[str, list[LayerRow]]] = []
    for row, path in zip(rows, paths):
        key = _module(path, row.name)
        if groups and groups[-1][0] == key:
            groups[-1][1].append(row)
        else:
            groups.append((key, [row]))
    merged = []
    for key, members in groups:
        ops = Counter(r.op_type for r in members)
        label = ", ".join(op if n == 1 else f"{op} x{n}" for op, n in ops.items())
        merged.append(LayerRow(key, label, members[-1].output_shape, sum(r.parameters for r in members)))
    return merged
