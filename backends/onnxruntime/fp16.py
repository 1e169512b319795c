"""fp16 on ``ort-aarch64`` (the ``quantization`` step's ``mode: fp16``): the compile-time decision, the float16
graph, and what ran on the board.

The graph is converted by ONNX Runtime's own converter
(:func:`onnxruntime.transformers.float16.convert_float_to_float16`, the one the ORT transformer tools use;
``keep_io_types=True`` so the plan's float32 inputs and outputs stay float32, with Casts at the edges). Ops the
converter knows have no float16 kernel, and the step's ``keep_float_ops`` / ``keep_float_layers``, stay float32
behind Casts. The float32 graph is optimized first at the target's portable level (``saved_optimization``:
constant folding, Conv+BatchNorm and similar fusions, in fp32, so folded weights are rounded once); the float16
graph is then saved as it is, because this x86 host's ONNX Runtime would wrap every fp16 op in Casts to float32
while optimizing it (it has no fp16 Conv/Gemm kernel; checked with onnxruntime 1.32).

Which targets: ONNX Runtime's CPU execution provider computes in fp16 only on ARM CPUs with FEAT_FP16 (MLAS's
half-precision kernels). ``ort-cpu`` (x86) is refused at compile time, as is a board whose CPU lacks fp16
arithmetic (read on the board). Whether the board *then* computes in fp16 is read, not assumed: the report reads
the graph the board executed (saved by its session, ``optimized_model_filepath``) and counts, for the compute ops
(Conv, MatMul, Gemm and their fused and integer forms), how many took int8, float16 and float32 inputs
(:func:`executed_precision`).
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from pathlib import Path
from typing import Any

from edgecraft.boards import has_arm_fp16
from edgecraft.errors import InputError

#: Ops that carry a model's arithmetic (the rest move, cast or normalize data).
COMPUTE_OPS = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm", "FusedConv", "NhwcFusedConv", "NhwcConv",
                         "FusedMatMul", "FusedGemm", "Attention", "MultiHeadAttention", "QLinearConv", "QGemm",
                         "QLinearMatMul", "MatMulInteger", "ConvInteger", "MatMulIntegerToFloat",
                         "DynamicQuantizeMatMul"})
#: Compute ops that multiply integers (int8 kernels).
INT8_COMPUTE = frozenset({"QLinearConv", "QGemm", "QLinearMatMul", "MatMulInteger", "ConvInteger",
                          "MatMulIntegerToFloat", "DynamicQuantizeMatMul"})
#: Ops of an int8 graph (the fp16 conversion is for float graphs only).
INT8_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul",
                      "MatMulInteger", "ConvInteger", "QGemm", "DynamicQuantizeMatMul"})
_FLOAT, _HALF = 1, 10  # onnx.TensorProto.FLOAT, FLOAT16
#: Why ort-cpu refuses fp16 (the x86 CPU execution provider).
X86_REASON = ("ONNX Runtime's CPU execution provider has fp16 Conv/MatMul/Gemm kernels only on ARM CPUs with fp16 "
              "arithmetic (MLAS half-precision paths); on this x86 target it inserts Casts to float32 in front of "
              "every fp16 op and computes in fp32 (seen with onnxruntime 1.32), so nothing would run in fp16")


def missing_fp16(features: dict[str, bool]) -> str | None:
    """Why a board CPU with these features would not compute in fp16 (None: it has fp16 arithmetic)."""
    if has_arm_fp16(features):
        return None
    present = ", ".join(sorted(k for k, v in features.items() if v)) or "none read"
    return (f"the board's CPU has no fp16 arithmetic (neither asimdhp nor fphp among its features: {present}), so "
            "ONNX Runtime's MLAS fp16 kernels would not run there")


def check_board_fp16(target: str, features: dict[str, bool]) -> None:
    """At run time on a real board (``device: local``, which the compiling host cannot read): refuse an fp16 graph
    on a CPU without fp16 arithmetic rather than report fp16 where it does not run."""
    why = missing_fp16(features)
    if why:
        raise InputError(f"target {target!r}: the artifact is fp16 (quantization mode 'fp16'), but {why}; edgecraft "
                         "does not report fp16 where it does not run",
                         hint="remove the quantization step with mode 'fp16' for this board (or use int8: mode "
                              "'static')")


def holds_fp16(path: Path) -> bool:
    """Whether the ONNX file computes in float16 somewhere (float16 weights, or a Cast to float16)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return any(i.data_type == _HALF for i in graph.initializer) or any(
        n.op_type == "Cast" and any(a.name == "to" and a.i == _HALF for a in n.attribute) for n in graph.node)


def _matched(names: list[str], patterns: tuple[str, ...], where: str) -> list[str]:
    out: set[str] = set()
    for pattern in patterns:
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            raise InputError(f"{where}: params.keep_float_layers pattern {pattern!r} matches no node of the graph",
                             hint=f"node names look like {names[:4]}")
        out.update(hits)
    return sorted(out)


def to_fp16(src: Path, dst: Path, *, keep_layers: tuple[str, ...] = (), keep_ops: tuple[str, ...] = (),
            int8_fallback: bool = False, where: str = "ort-aarch64 fp16") -> dict[str, Any]:
    """Write ``src`` converted to float16 (I/O kept float32; ``keep_*`` in float32) to ``dst``; what was kept.

    ``int8_fallback``: ``src`` is an int8 QDQ graph; only the layers it left in float become float16 (the int8 groups,
    see :mod:`.fp16_islands`, stay as they are). Otherwise a quantized graph is refused."""
    import onnx
    from edgecraft.backends.onnxruntime.fp16_islands import DYNAMIC_INT8, drop_cast_pairs, int8_group_nodes, name_nodes
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    model = onnx.load(str(src))
    name_nodes(model.graph)
    ops = {n.op_type for n in model.graph.node}
    integer = sorted(ops & INT8_OPS)
    if integer and not int8_fallback:
        raise InputError(f"{where}: mode 'fp16' converts a float graph, but this one is quantized "
                         f"({', '.join(integer)}): an earlier step made it int8",
                         hint="keep one quantization step: mode 'fp16', or an int8 mode with float_precision 'fp16'")
    if int8_fallback and (not integer or ops & DYNAMIC_INT8):
        what = "has no int8 op" if not integer else f"is dynamic int8 ({', '.join(sorted(ops & DYNAMIC_INT8))})"
        raise InputError(f"{where}: float_precision 'fp16' converts the float layers of a static int8 QDQ graph, but "
                         f"this graph {what}", hint="use mode 'static' with float_precision 'fp16'")
    nodes = _matched([n.name for n in model.graph.node], keep_layers, where)
    group = int8_group_nodes(model.graph) if int8_fallback else []
    half = convert_float_to_float16(model, keep_io_types=True, op_block_list=[*DEFAULT_OP_BLOCK_LIST, *keep_ops],
                                    node_block_list=[*nodes, *group])
    pairs = drop_cast_pairs(half.graph)
    onnx.save(half, str(dst))
    kept_ops = [n.name for n in model.graph.node if n.op_type in keep_ops]
    float_compute = [n for n in model.graph.node if n.op_type in COMPUTE_OPS and n.name not in group]
    out = {"kept_float32": sorted({*nodes, *kept_ops}),
           "compute_ops_converted": sum(1 for n in float_compute if n.name not in nodes and n.op_type not in keep_ops),
           "cast_pairs_removed": pairs}
    if int8_fallback:
        out["int8_groups_kept"] = sum(1 for n in model.graph.node if n.name in group and n.op_type not in
                                      ("QuantizeLinear", "DequantizeLinear"))
    return out


def _elem_types(graph: Any) -> dict[str, int]:
    """Element type of every tensor of an executed graph: declared ones (inputs, initializers, value_info), then
    propagated in node order (Cast sets its ``to``; other ops give the type of their first typed input). The
    board's saved graph carries contrib ops (FusedConv, NhwcFusedConv) that ONNX shape inference does not know,
    so the propagation does not depend on it."""
    types: dict[str, int] = {}
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type:
            types[vi.name] = vi.type.tensor_type.elem_type
    for init in graph.initializer:
        types[init.name] = init.data_type
    for node in graph.node:
        if node.op_type == "Cast":
            out = next(a.i for a in node.attribute if a.name == "to")
        else:
            out = next((types[i] for i in node.input if i in types and types[i] in (_FLOAT, _HALF)), 0)
        for name in node.output:
            if out and name not in types:
                types[name] = out
    return types


def executed_precision(path: Path) -> dict[str, Any]:
    """Compute ops of the executed graph at ``path`` by what they computed in: int8 (integer kernels), float16
    or float32 (the type of their first input), and the shares (fp16_share 0.0: every float op ran in float32)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    types = _elem_types(graph)
    by: dict[str, Counter[str]] = {}
    for node in graph.node:
        if node.op_type not in COMPUTE_OPS:
            continue
        if node.op_type in INT8_COMPUTE:
            label = "int8"
        else:
            kind = types.get(node.input[0], 0) if node.input else 0
            label = {_HALF: "float16", _FLOAT: "float32"}.get(kind, "other")
        by.setdefault(node.op_type, Counter())[label] += 1
    counts = {k: sum(c[k] for c in by.values()) for k in ("int8", "float16", "float32")}
    total = sum(counts.values())
    return {"compute_ops_int8": counts["int8"], "compute_ops_fp16": counts["float16"],
            "compute_ops_fp32": counts["float32"],
            "fp16_share": round(counts["float16"] / total, 4) if total else 0.0,
            "int8_share": round(counts["int8"] / total, 4) if total else 0.0,
            "fp32_share": round(counts["float32"] / total, 4) if total else 0.0,
            "casts": sum(1 for n in graph.node if n.op_type == "Cast"),
            "by_op": {op: dict(sorted(c.items())) for op, c in sorted(by.items())}}


def precision_label(executed: dict[str, Any]) -> str:
    """What the executed graph computed in, in one word: 'fp16' (every compute op), 'fp16+fp32', 'int8+fp16', ..."""
    parts = [name for name, key in (("int8", "compute_ops_int8"), ("fp16", "compute_ops_fp16"),
                                    ("fp32", "compute_ops_fp32")) if executed.get(key)]
    return "+".join(parts) or "fp32"
