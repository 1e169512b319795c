"""Count a model's compute from its ONNX graph: parameters, multiply-accumulates (MACs), and the int8 share.

Compute is counted on the ONNX graph every artifact keeps (``lineage/model.onnx``: the graph the
backend imported), with the model's inputs fixed to their concrete shapes at batch 1. That makes the
count the same for every model source (torch, ONNX, Hugging Face, a plugin's) and every backend,
and cheap (shape inference, no runtime), so it is always reported.

What is counted (one MAC = one multiply plus one add):

* ``Conv``: ``prod(output shape) * (C_in / group) * prod(kernel)`` (the weight is ``[C_out, C_in/g, k...]``).
* ``ConvTranspose``: ``prod(input shape) * (C_out / group) * prod(kernel)`` (weight ``[C_in, C_out/g, k...]``).
* ``Gemm`` ``M*N*K``; ``MatMul`` (batched too) ``prod(output shape) * K``.
* Integer kernels count as int8: ``MatMulInteger``, ``ConvInteger``, ``QLinearConv``, ``QLinearMatMul``
  (and com.microsoft ``QGemm``). In a QDQ graph a ``Conv``/``ConvTranspose``/``Gemm``/``MatMul``
  whose data *and* weight inputs both come straight from ``DequantizeLinear`` counts as int8: that is
  the pattern ONNX Runtime fuses into an integer kernel; a weight-only DQ stays float compute.

Everything else (activations, pooling, normalization, element-wise ops) is not counted: on the
models edgecraft compresses those are a few percent of the work, and the peers' counters (thop,
fvcore, ptflops) leave them out too, so the numbers compare.

Parameters: the elements of every initializer (and ``Constant``) except int64 tensors (shapes, axes,
indices) and quantization scales/zero points; ``weight_bytes`` is their storage. A step that runs after
the ONNX graph (OpenVINO's NNCF int8, a native stage) does not show in this graph: the counter says so
rather than report an int8 share of zero as if it were measured.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Ops whose MACs run on integer kernels whatever their inputs are.
INTEGER_OPS = frozenset({"MatMulInteger", "ConvInteger", "QLinearConv", "QLinearMatMul", "QGemm"})
#: Float ops that run as int8 when both their data and weight come from DequantizeLinear (QDQ).
QDQ_FUSABLE = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
COUNTED_OPS = INTEGER_OPS | QDQ_FUSABLE
#: (data input index, weight input index) of each counted op.
_OPERANDS = {"Conv": (0, 1), "ConvTranspose": (0, 1), "Gemm": (0, 1), "MatMul": (0, 1), "MatMulInteger": (0, 1),
             "ConvInteger": (0, 1), "QLinearConv": (0, 3), "QLinearMatMul": (0, 3), "QGemm": (0, 3)}
#: Inputs of quantization ops that hold scales and zero points (not parameters).
_QUANT_PARAM_INPUTS = {"QuantizeLinear": (1, 2), "DequantizeLinear": (1, 2), "DynamicQuantizeLinear": (),
                       "QLinearConv": (1, 2, 4, 5, 6, 7), "QLinearMatMul": (1, 2, 4, 5, 6, 7),
                       "QGemm": (1, 2, 4, 5, 7, 8), "MatMulInteger": (2, 3), "ConvInteger": (2, 3)}


@dataclass
class ComputeCount:
    """Parameters and MACs of one graph at batch 1."""

    params: int = 0
    weight_bytes: int = 0
    macs: int = 0
    int8_macs: int = 0
    by_op: dict[str, int] = field(default_factory=dict)
    #: Counted ops whose shapes shape inference could not resolve (their MACs are missing from the total).
    uncounted: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def int8_fraction(self) -> float:
        return self.int8_macs / self.macs if self.macs else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"params": self.params, "weight_bytes": self.weight_bytes, "macs": self.macs,
                "int8_macs": self.int8_macs, "int8_fraction": self.int8_fraction, "by_op": dict(self.by_op),
                "uncounted": list(self.uncounted), "notes": list(self.notes)}


def _prod(dims: Any) -> int:
    out = 1
    for d in dims:
        out *= int(d)
    return out


def _fix_inputs(model: Any, shapes: Mapping[str, tuple[int, ...]] | None) -> None:
    """Write concrete dimensions into the graph's inputs (symbolic ones not given become 1: batch 1)."""
    initializers = {t.name for t in model.graph.initializer}
    for value in model.graph.input:
        if value.name in initializers or not value.type.HasField("tensor_type"):
            continue
        dims = value.type.tensor_type.shape.dim
        wanted = None if shapes is None else shapes.get(value.name)
        for i, dim in enumerate(dims):
            if wanted is not None and i < len(wanted):
                dim.Clear()
                dim.dim_value = int(wanted[i])
            elif not dim.HasField("dim_value"):
                dim.Clear()
                dim.dim_value = 1


def _shapes(model: Any) -> dict[str, tuple[int, ...]]:
    """Every tensor whose shape is fully known after shape inference (inputs, values, outputs, initializers)."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # an op shape inference does not know (a contrib op): keep what the file says
        inferred = model
    out: dict[str, tuple[int, ...]] = {}
    graph = inferred.graph
    for value in [*graph.input, *graph.value_info, *graph.output]:
        tt = value.type.tensor_type
        if value.type.HasField("tensor_type") and tt.HasField("shape") and all(
                d.HasField("dim_value") for d in tt.shape.dim):
            out[value.name] = tuple(int(d.dim_value) for d in tt.shape.dim)
    for init in graph.initializer:
        out[init.name] = tuple(int(d) for d in init.dims)
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and attr.HasField("t"):
                    out[node.output[0]] = tuple(int(d) for d in attr.t.dims)
    return out


def _node_macs(node: Any, shapes: Mapping[str, tuple[int, ...]]) -> int | None:
    """MACs of one counted node, or None when a shape it needs is unknown."""
    op = node.op_type
    data_i, weight_i = _OPERANDS[op]
    if len(node.input) <= weight_i:
        return None
    x, w = shapes.get(node.input[data_i]), shapes.get(node.input[weight_i])
    y = shapes.get(node.output[0])
    if op in ("Conv", "ConvInteger", "QLinearConv"):
        if w is None or y is None:
            return None
        return _prod(y) * _prod(w[1:])
    if op == "ConvTranspose":
        if w is None or x is None:
            return None
        return _prod(x) * _prod(w[1:])
    if op in ("Gemm", "QGemm"):
        if y is None or x is None:
            return None
        trans_a = next((a.i for a in node.attribute if a.name == "transA"), 0)
        k = x[0] if trans_a else x[-1]
        return _prod(y) * int(k)
    # MatMul family (numpy semantics: 1-D operands are promoted, so K is A's last dimension)
    if y is None or x is None:
        return None
    return max(_prod(y), 1) * int(x[-1])


def count_graph(model: Any, input_shapes: Mapping[str, tuple[int, ...]] | None = None) -> ComputeCount:
    """Count an ``onnx.ModelProto`` (modified in place: its inputs get concrete shapes)."""
    from onnx import TensorProto

    _fix_inputs(model, input_shapes)
    shapes = _shapes(model)
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    quant_only: dict[str, bool] = {}
    for node in graph.node:
        special = _QUANT_PARAM_INPUTS.get(node.op_type, ())
        for i, name in enumerate(node.input):
            is_qparam = i in special
            quant_only[name] = quant_only.get(name, True) and is_qparam
    count = ComputeCount()
    tensors = [(t.name, t.data_type, tuple(t.dims)) for t in graph.initializer]
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and attr.HasField("t"):
                    tensors.append((node.output[0], attr.t.data_type, tuple(attr.t.dims)))
    for name, dtype, dims in tensors:
        if dtype == TensorProto.INT64 or quant_only.get(name, False):
            continue
        n = _prod(dims)
        count.params += n
        try:
            from onnx.helper import tensor_dtype_to_np_dtype

            count.weight_bytes += n * np.dtype(tensor_dtype_to_np_dtype(dtype)).itemsize
        except Exception:
            count.weight_bytes += n * 4
    for node in graph.node:
        if node.op_type not in COUNTED_OPS or (node.domain not in ("", "ai.onnx", "com.microsoft")):
            continue
        macs = _node_macs(node, shapes)
        if macs is None:
            count.uncounted.append(f"{node.op_type} {node.name or node.output[0]}")
            continue
        count.macs += macs
        count.by_op[node.op_type] = count.by_op.get(node.op_type, 0) + macs
        if node.op_type in INTEGER_OPS:
            count.int8_macs += macs
        else:
            data_i, weight_i = _OPERANDS[node.op_type]
            ops = [producer.get(node.input[i]) for i in (data_i, weight_i)]
            if all(p is not None and p.op_type == "DequantizeLinear" for p in ops):
                count.int8_macs += macs
    if count.uncounted:
        count.notes.append(f"{len(count.uncounted)} op(s) with unresolved shapes not counted: "
                           + ", ".join(count.uncounted[:5]) + ("..." if len(count.uncounted) > 5 else ""))
    return count


def count_onnx(path: Path | str, input_shapes: Mapping[str, tuple[int, ...]] | None = None) -> ComputeCount:
    """Count an ONNX file (external weight data is not loaded: the dimensions are in the graph)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return count_graph(model, input_shapes)


def count_artifact(artifact_dir: Path, input_shapes: Mapping[str, tuple[int, ...]] | None = None
                   ) -> ComputeCount | None:
    """Count an artifact's ``lineage/model.onnx``; None when the artifact has no ONNX lineage."""
    import json

    folder = Path(artifact_dir)
    path = folder / "lineage" / "model.onnx"
    if not path.is_file():
        return None
    count = count_onnx(path, input_shapes)
    try:
        steps = json.loads((folder / "manifest.json").read_text()).get("compiled_plan", {}).get("steps", [])
    except (OSError, ValueError):
        steps = []
    native = [str(s.get("strategy", "?")) for s in steps if isinstance(s, dict) and s.get("stage") == "native"]
    if native:
        count.notes.append(f"step(s) {', '.join(native)} ran on the backend's own model after this ONNX graph: "
                           "their int8 share is not visible here (int8_fraction counts the ONNX graph only)")
    return count
