"""Count a model's compute from its ONNX graph: parameters, multiply-accumulates (MACs), and the int8 share.

Compute is counted on the ONNX graph every artifact keeps (``lineage/model.onnx``: the graph the
backend imported), with the model's inputs fixed to their concrete shapes at batch 1. That makes the
count the same for every model source (torch, ONNX, Hugging Face, a plugin's) and every backend,
and cheap (shape inference, no runtime), so it is always reported.

What is counted (one MAC = one multiply plus one add):

* ``Conv``: ``prod(output shape) * (C_in / group) * prod(kernel)`` (the weight is ``[C_out, C_in/g, k...]``).
* ``ConvTranspose``: ``prod(input shape) * (C_out / group) * prod(kernel)`` (weight ``[C_in, C_out/g, k...]``).
* ``Gemm`` ``M*N*K``; ``MatMul`` ``prod(batch) * M * N * K`` with numpy broadcasting of the batch dimensions
  (a transformer's ``[B, heads, S, d] x [B, heads, d, S]``, or ``[B, S, H] x [H, N]``).
* ``LSTM``/``GRU``/``RNN``: ``seq * batch * (|W| + |R|)``; com.microsoft ``Attention``: the packed QKV
  projection plus ``QK^T`` and ``AV``.
* ``If``/``Loop``/``Scan`` bodies are counted too: an ``If`` adds its larger branch (said in the notes).
* Integer kernels count as int8: ``MatMulInteger``, ``ConvInteger``, ``QLinearConv``, ``QLinearMatMul``
  (and com.microsoft ``QGemm``, ``DynamicQuantizeMatMul``, ``MatMulIntegerToFloat``, ``QAttention``). In a
  QDQ lineage graph a ``Conv``/``ConvTranspose``/``Gemm``/``MatMul`` whose data *and* weight inputs both come
  straight from ``DequantizeLinear`` counts as int8: the pattern ONNX Runtime *may* fuse. Whether it did is
  only in the graph it executes: ``count_graph(..., executed=True)`` counts such a graph (a backend's
  ``executed_compute`` reads it), where only integer kernels are int8 and the report's int8 share comes from.

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
from edgecraft.verify.graph_shapes import int_attr, prod, subgraphs, tensor_shapes

#: Ops whose MACs run on integer kernels whatever their inputs are (ONNX's and ONNX Runtime's contrib ops, as
#: they appear in the graph ONNX Runtime executes after its fusions).
INTEGER_OPS = frozenset({"MatMulInteger", "ConvInteger", "QLinearConv", "QLinearMatMul", "QGemm",
                         "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QAttention", "DynamicQuantizeLSTM"})
#: Float ops that run as int8 when both their data and weight come from DequantizeLinear (QDQ).
QDQ_FUSABLE = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
#: ONNX Runtime's fused float kernels (FusedConv = Conv + activation, the NCHWc "Conv", FusedMatMul ...).
FUSED_FLOAT = frozenset({"FusedConv", "FusedGemm", "FusedMatMul", "NhwcConv", "Attention", "LSTM", "GRU", "RNN"})
COUNTED_OPS = INTEGER_OPS | QDQ_FUSABLE | FUSED_FLOAT
#: (data input index, weight input index) of each counted op.
_OPERANDS = {"Conv": (0, 1), "ConvTranspose": (0, 1), "Gemm": (0, 1), "MatMul": (0, 1), "MatMulInteger": (0, 1),
             "ConvInteger": (0, 1), "QLinearConv": (0, 3), "QLinearMatMul": (0, 3), "QGemm": (0, 3),
             "DynamicQuantizeMatMul": (0, 1), "MatMulIntegerToFloat": (0, 1), "FusedConv": (0, 1),
             "NhwcConv": (0, 1), "FusedGemm": (0, 1), "FusedMatMul": (0, 1), "Attention": (0, 1),
             "QAttention": (0, 1), "LSTM": (0, 1), "GRU": (0, 1), "RNN": (0, 1), "DynamicQuantizeLSTM": (0, 1)}
_CONV = frozenset({"Conv", "ConvInteger", "QLinearConv", "FusedConv", "NhwcConv"})
_GEMM = frozenset({"Gemm", "QGemm", "FusedGemm"})
_RECURRENT = frozenset({"LSTM", "GRU", "RNN", "DynamicQuantizeLSTM"})
_DOMAINS = frozenset({"", "ai.onnx", "com.microsoft", "com.microsoft.nchwc"})
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


def fix_inputs(model: Any, shapes: Mapping[str, tuple[int, ...]] | None) -> None:
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


def _matmul_macs(x: tuple[int, ...] | None, w: tuple[int, ...] | None, y: tuple[int, ...] | None,
                 trans_a: int = 0, trans_b: int = 0) -> int | None:
    """A (batched, broadcast) matrix product: ``prod(batch) * M * N * K``, from the operands when both are known
    (numpy broadcasting of the leading dimensions, 1-D operands promoted), else ``prod(y) * K``."""
    if x is None:
        return None
    k = int(x[-2] if trans_a and len(x) >= 2 else x[-1])
    if w is not None:
        m = int(x[-1] if trans_a else x[-2]) if len(x) >= 2 else 1
        n = int(w[-2] if trans_b else w[-1]) if len(w) >= 2 else 1
        a_batch, b_batch = list(x[:-2]), list(w[:-2])
        width = max(len(a_batch), len(b_batch))
        a_batch = [1] * (width - len(a_batch)) + a_batch
        b_batch = [1] * (width - len(b_batch)) + b_batch
        return prod(max(a, b) for a, b in zip(a_batch, b_batch, strict=True)) * m * n * k
    if y is None:
        return None
    return max(prod(y), 1) * k


def _node_macs(node: Any, shapes: Mapping[str, tuple[int, ...]]) -> int | None:
    """MACs of one counted node, or None when a shape it needs is unknown."""
    op = node.op_type
    data_i, weight_i = _OPERANDS[op]
    if len(node.input) <= weight_i:
        return None
    x, w = shapes.get(node.input[data_i]), shapes.get(node.input[weight_i])
    y = shapes.get(node.output[0]) if node.output else None
    if op in _CONV:
        if w is None or y is None:
            return None
        return prod(y) * prod(w[1:])
    if op == "ConvTranspose":
        if w is None or x is None:
            return None
        return prod(x) * prod(w[1:])
    if op in _RECURRENT:  # X [seq, batch, in] (or batch-first), W [dirs, gates*H, in], R [dirs, gates*H, H]
        r = shapes.get(node.input[2]) if len(node.input) > 2 else None
        if x is None or w is None or r is None or len(x) < 2:
            return None
        return int(x[0]) * int(x[1]) * (prod(w) + prod(r))
    if op in ("Attention", "QAttention"):  # input [B, S, H] times the packed QKV weight [H, 3H], then QK^T and AV
        if x is None or w is None or len(x) != 3:
            return None
        batch, seq, _ = (int(d) for d in x)
        return batch * seq * prod(w) + 2 * batch * seq * seq * (int(w[-1]) // 3)
    if op in _GEMM:
        return _matmul_macs(x, w, y, int_attr(node, "transA"), int_attr(node, "transB"))
    if op == "FusedMatMul":
        return _matmul_macs(x, w, y, int_attr(node, "transA"), int_attr(node, "transB"))
    return _matmul_macs(x, w, y)  # MatMul and its integer forms


def _is_counted(node: Any) -> bool:
    return node.op_type in COUNTED_OPS and node.domain in _DOMAINS


def _count_nodes(graph: Any, shapes: Mapping[str, tuple[int, ...]], count: ComputeCount, executed: bool,
                 producer: dict[str, Any]) -> None:
    """Add the MACs of ``graph``'s nodes to ``count``, descending into control flow.

    ``If``: both branches are counted and the larger is added (a static count cannot know which branch a call
    takes; the larger is what a worst-case budget needs). ``Loop``: the body times its trip count when that is a
    constant, else once. ``Scan``: the body once per element of the first scan input's leading axis when known.
    """
    producer.update({out: node for node in graph.node for out in node.output})
    for node in graph.node:
        bodies = subgraphs(node)
        if bodies:
            parts = []
            for name, body in bodies:
                part = ComputeCount()
                _count_nodes(body, shapes, part, executed, producer)
                parts.append((name, part))
            if node.op_type == "If":
                name, part = max(parts, key=lambda p: p[1].macs)
                if len({p.macs for _, p in parts}) > 1:
                    count.notes.append(f"If {node.name or node.output[0]}: counted its larger branch ({name})")
                times = 1
            else:
                name, part = parts[0]
                times = _trip_count(node, shapes)
                if times is None:
                    times = 1
                    if part.macs:
                        count.notes.append(f"{node.op_type} {node.name or node.output[0]}: trip count unknown, "
                                           "its body counted once")
            _merge(count, part, times)
            continue
        if not _is_counted(node):
            continue
        macs = _node_macs(node, shapes)
        if macs is None:
            count.uncounted.append(f"{node.op_type} {node.name or node.output[0]}")
            continue
        count.macs += macs
        count.by_op[node.op_type] = count.by_op.get(node.op_type, 0) + macs
        if node.op_type in INTEGER_OPS:
            count.int8_macs += macs
        elif not executed and node.op_type in QDQ_FUSABLE:
            # Lineage only: the QDQ pattern a runtime *may* fuse. In an executed graph an unfused DQ -> Conv is
            # exactly what runs in float (ONNX Runtime at basic optimization).
            data_i, weight_i = _OPERANDS[node.op_type]
            ops = [producer.get(node.input[i]) for i in (data_i, weight_i)]
            if all(p is not None and p.op_type == "DequantizeLinear" for p in ops):
                count.int8_macs += macs


def _trip_count(node: Any, shapes: Mapping[str, tuple[int, ...]]) -> int | None:
    """Scan: the leading axis of its first scan input (its last ``num_scan_inputs`` inputs). Loop: unknown here."""
    if node.op_type == "Scan":
        scans = int_attr(node, "num_scan_inputs")
        first = shapes.get(node.input[len(node.input) - scans]) if 0 < scans <= len(node.input) else None
        return int(first[0]) if first else None
    return None


def _merge(count: ComputeCount, part: ComputeCount, times: int) -> None:
    count.macs += part.macs * times
    count.int8_macs += part.int8_macs * times
    for op, n in part.by_op.items():
        count.by_op[op] = count.by_op.get(op, 0) + n * times
    count.uncounted += part.uncounted
    count.notes += part.notes


def count_graph(model: Any, input_shapes: Mapping[str, tuple[int, ...]] | None = None, *, executed: bool = False,
                known_shapes: Mapping[str, tuple[int, ...]] | None = None) -> ComputeCount:
    """Count an ``onnx.ModelProto`` (modified in place: its inputs get concrete shapes).

    ``executed``: the graph is one a runtime executes (ONNX Runtime's optimized model): only integer kernels
    count as int8, an unfused QDQ pattern is float compute. ``known_shapes``: tensor shapes measured elsewhere
    (by running the graph), used where shape inference cannot resolve one (contrib ops, computed reshapes).
    """
    from onnx import TensorProto

    fix_inputs(model, input_shapes)
    shapes = tensor_shapes(model, COUNTED_OPS)
    if known_shapes:
        shapes = {**shapes, **{k: tuple(v) for k, v in known_shapes.items()}}
    graph = model.graph
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
        n = prod(dims)
        count.params += n
        try:
            from onnx.helper import tensor_dtype_to_np_dtype

            count.weight_bytes += n * np.dtype(tensor_dtype_to_np_dtype(dtype)).itemsize
        except Exception:
            count.weight_bytes += n * 4
    _count_nodes(graph, shapes, count, executed, {})
    count.notes = list(dict.fromkeys(count.notes))
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
