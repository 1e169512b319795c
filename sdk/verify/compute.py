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


def _prod(dims: Any) -> int:
    out = 1
    for d in dims:
        out *= int(d)
    return out


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


def _subgraphs(node: Any) -> list[tuple[str, Any]]:
    """(attribute name, GraphProto) of a control-flow node's bodies (If branches, Loop/Scan bodies)."""
    return [(a.name, a.g) for a in node.attribute if a.HasField("g")]


def _collect_shapes(graph: Any, out: dict[str, tuple[int, ...]]) -> None:
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
        for _, body in _subgraphs(node):  # shape inference writes the bodies' value_info into them
            _collect_shapes(body, out)


def _inferred(model: Any) -> dict[str, tuple[int, ...]]:
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # an op shape inference does not know (a contrib op): keep what the file says
        inferred = model
    out: dict[str, tuple[int, ...]] = {}
    _collect_shapes(inferred.graph, out)
    return out


def _concrete(value: Any) -> bool:
    tensor = value.type.tensor_type
    return bool(value.type.HasField("tensor_type") and tensor.HasField("shape")
                and all(d.HasField("dim_value") for d in tensor.shape.dim))


def _skeleton(model: Any) -> Any:
    """``model`` without its large initializers' data (each becomes a graph input of its dtype and shape)
    and without value_info that is not concrete.

    Shape inference serializes the whole model (weights included) on every call; only small tensors
    (shapes, axes, indices) carry values it reads."""
    import onnx

    graph = model.graph
    large = [t for t in graph.initializer if _prod(t.dims) > _MAX_FOLDED]
    symbolic = [v for v in graph.value_info if not _concrete(v)]
    if not large and not symbolic:
        return model
    skeleton = onnx.ModelProto()
    skeleton.ir_version = model.ir_version
    skeleton.opset_import.extend(model.opset_import)
    skeleton.graph.name = graph.name
    skeleton.graph.node.extend(graph.node)
    skeleton.graph.input.extend(graph.input)
    skeleton.graph.output.extend(graph.output)
    # A quantizer's symbolic value_info ('unk__0') would win over what folding makes concrete: only concrete kept.
    skeleton.graph.value_info.extend(v for v in graph.value_info if _concrete(v))
    skeleton.graph.initializer.extend(t for t in graph.initializer if _prod(t.dims) <= _MAX_FOLDED)
    named = {i.name for i in graph.input}
    skeleton.graph.input.extend(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                                for t in large if t.name not in named)
    return skeleton


def _shapes(model: Any) -> dict[str, tuple[int, ...]]:
    """Every tensor whose shape is fully known after shape inference (inputs, values, outputs, initializers),
    in the main graph and in every If/Loop/Scan body; shape arithmetic is folded first where inference
    alone leaves a counted op's operands unknown (:func:`_fold_shape_arithmetic`)."""
    model = _skeleton(model)
    out = _inferred(model)
    for _ in range(MAX_FOLD_ROUNDS):
        if not _unresolved(model.graph, out):
            break
        folded = _fold_shape_arithmetic(model, out)
        if folded is None:
            break
        out = {**_inferred(folded), **out}
        model = folded
    return out


#: Rounds of folding then inference (each can resolve Shape ops the previous one could not).
MAX_FOLD_ROUNDS = 4
#: Integer ops that compute shapes in exported graphs (TorchScript: Shape -> Gather -> Unsqueeze -> Concat).
_SHAPE_OPS = frozenset({"Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast", "Add", "Sub", "Mul",
                        "Div", "Equal", "Where", "Range", "ConstantOfShape", "Identity", "Reshape", "Expand",
                        "Min", "Max", "Neg", "Not", "Less", "Greater", "ReduceProd"})
#: Folded tensors larger than this are not shapes (position-id tables and the like are left alone).
_MAX_FOLDED = 4096


def _unresolved(graph: Any, shapes: Mapping[str, tuple[int, ...]]) -> bool:
    return any(node.op_type in COUNTED_OPS and not all(name in shapes for name in node.input[:2] if name)
               for node in graph.node)


def _fold_shape_arithmetic(model: Any, shapes: Mapping[str, tuple[int, ...]]) -> Any | None:
    """A copy of ``model`` whose shape computations are constants, or None when nothing folds.

    ONNX's shape inference propagates values through Shape/Gather/Concat (``data_prop``) but its Slice and
    Range read only initializers, so a TorchScript export (position ids sliced to the input's length,
    reshapes computed from ``Shape``) leaves every MatMul after the embeddings unresolved; ONNX Runtime's
    symbolic shape inference raises on the same graph (onnxruntime 1.23, a None shape in Expand). With
    the inputs' concrete shapes these are small integer computations: each is evaluated by ONNX's
    reference implementation of its op and replaced by its value."""
    import onnx
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    graph = model.graph
    values: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in graph.initializer
                                     if t.data_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32)
                                     and _prod(t.dims) <= _MAX_FOLDED}
    for node in graph.node:
        attr = next((a for a in node.attribute if a.name == "value" and a.HasField("t")), None)
        if node.op_type == "Constant" and attr is not None and _prod(attr.t.dims) <= _MAX_FOLDED:
            values[node.output[0]] = numpy_helper.to_array(attr.t)
    folded: dict[str, np.ndarray] = {}
    pending = [n for n in graph.node if n.op_type in _SHAPE_OPS and n.domain in ("", "ai.onnx")]
    tried: set[str] = set()  # evaluated without a foldable result (an error, or too large to be a shape)
    progress = True
    while progress:  # until nothing more folds: quantizers append nodes out of topological order
        progress = False
        for node in pending:
            if node.output[0] in values or node.name + node.output[0] in tried:
                continue
            if node.op_type == "Shape":
                if node.input[0] in shapes:
                    start = _attr(node, "start", 0)
                    end = next((a.i for a in node.attribute if a.name == "end"), None)
                    folded[node.output[0]] = values[node.output[0]] = np.array(shapes[node.input[0]][start:end],
                                                                               np.int64)
                    progress = True
                continue
            inputs = [name for name in node.input if name]
            if not all(name in values for name in inputs):
                continue
            tried.add(node.name + node.output[0])
            try:
                results = ReferenceEvaluator(node).run(None, {name: values[name] for name in inputs})
            except Exception:  # an op the reference cannot evaluate here: leave it to inference
                continue
            for name, result in zip(node.output, results, strict=False):
                array = np.asarray(result)
                if array.size <= _MAX_FOLDED:
                    folded[name] = values[name] = array
                    progress = True
    if not folded:
        return None
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    nodes = [n for n in copy.graph.node if not (n.output and all(o in folded for o in n.output if o))]
    del copy.graph.node[:]
    copy.graph.node.extend(nodes)
    copy.graph.initializer.extend(numpy_helper.from_array(v, name) for name, v in folded.items())
    return copy


def _attr(node: Any, name: str, default: int = 0) -> int:
    return next((int(a.i) for a in node.attribute if a.name == name), default)


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
        return _prod(max(a, b) for a, b in zip(a_batch, b_batch, strict=True)) * m * n * k
    if y is None:
        return None
    return max(_prod(y), 1) * k


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
        return _prod(y) * _prod(w[1:])
    if op == "ConvTranspose":
        if w is None or x is None:
            return None
        return _prod(x) * _prod(w[1:])
    if op in _RECURRENT:  # X [seq, batch, in] (or batch-first), W [dirs, gates*H, in], R [dirs, gates*H, H]
        r = shapes.get(node.input[2]) if len(node.input) > 2 else None
        if x is None or w is None or r is None or len(x) < 2:
            return None
        return int(x[0]) * int(x[1]) * (_prod(w) + _prod(r))
    if op in ("Attention", "QAttention"):  # input [B, S, H] times the packed QKV weight [H, 3H], then QK^T and AV
        if x is None or w is None or len(x) != 3:
            return None
        batch, seq, _ = (int(d) for d in x)
        return batch * seq * _prod(w) + 2 * batch * seq * seq * (int(w[-1]) // 3)
    if op in _GEMM:
        return _matmul_macs(x, w, y, _attr(node, "transA"), _attr(node, "transB"))
    if op == "FusedMatMul":
        return _matmul_macs(x, w, y, _attr(node, "transA"), _attr(node, "transB"))
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
        bodies = _subgraphs(node)
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
        scans = _attr(node, "num_scan_inputs")
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
    shapes = _shapes(model)
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
        n = _prod(dims)
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
