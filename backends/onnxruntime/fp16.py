"""``precision: fp16`` on ``ort-aarch64``: the float16 artifact, the compile-time refusal, and what ran.

The artifact is the model converted by ONNX Runtime's own converter
(:func:`onnxruntime.transformers.float16.convert_float_to_float16`, the one the ORT transformer tools use;
``keep_io_types=True`` so the plan's float32 inputs and outputs stay float32, with Casts at the edges). Ops the
converter knows have no float16 kernel stay float32 behind Casts.

Whether the board computes in fp16 is not assumed: ONNX Runtime's CPU execution provider has float16 kernels for
only some ops on ARM (MLAS half-precision paths, built when the CPU has FEAT_FP16), and its optimizer may move
work around. So the report reads the graph the board *executed* (saved by the board's session,
``optimized_model_filepath``) and counts, for the compute ops (Conv, MatMul, Gemm and their fused forms), how
many take float16 inputs and how many take float32 (:func:`executed_precision`).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from edgecraft.errors import InputError

#: Ops that carry a model's arithmetic (the rest move, cast or normalize data).
COMPUTE_OPS = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm", "FusedConv", "NhwcFusedConv", "NhwcConv",
                         "FusedMatMul", "FusedGemm", "Attention", "MultiHeadAttention", "QLinearConv", "QGemm",
                         "QLinearMatMul", "MatMulInteger", "ConvInteger", "MatMulIntegerToFloat"})
#: Ops of an int8 graph (the fp16 conversion is for float graphs only).
INT8_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul",
                      "MatMulInteger", "ConvInteger", "QGemm", "DynamicQuantizeMatMul"})
#: ARM's fp16-arithmetic features (FEAT_FP16: scalar ``fphp``, vector ``asimdhp``), as read on the board.
FP16_FEATURES = ("asimdhp", "fphp")
_FLOAT, _HALF = 1, 10  # onnx.TensorProto.FLOAT, FLOAT16


def check_board_fp16(target: str, features: dict[str, bool]) -> None:
    """Refuse ``precision: fp16`` at compile time when the board's CPU has no fp16 arithmetic: ONNX Runtime's
    MLAS fp16 kernels need FEAT_FP16; without it the graph would not compute in fp16 there."""
    if not any(features.get(flag) for flag in FP16_FEATURES):
        present = ", ".join(sorted(k for k, v in features.items() if v)) or "none read"
        raise InputError(f"target {target!r} option precision 'fp16': the board's CPU has no fp16 arithmetic "
                         f"(neither asimdhp nor fphp among its features: {present}), so ONNX Runtime would not "
                         "compute in fp16 there; edgecraft does not report fp16 where it does not run",
                         hint="use precision 'fp32' (or int8 through the quantization step) on this board")


def to_fp16(src: Path, dst: Path) -> None:
    """Write ``src`` converted to float16 (I/O kept float32) to ``dst``."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    integer = sorted({n.op_type for n in model.graph.node} & INT8_OPS)
    if integer:
        # int8 with fp16 fallback layers is not built here: converting the Q/DQ scales to fp16 is not measured.
        raise InputError(f"target 'ort-aarch64' option precision 'fp16': the model is quantized ({', '.join(integer)}"
                         "); int8 with fp16 fallback layers is not supported on this target",
                         hint="use precision 'fp32' with the quantization step, or fp16 without it")
    onnx.save(convert_float_to_float16(model, keep_io_types=True), str(dst))


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
    """Compute ops of the executed graph at ``path`` by the float type of their inputs: how many ran in fp16,
    how many fell back to fp32, and the fp16 share (0.0 when every compute op is float32 behind Casts)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    types = _elem_types(graph)
    by: dict[str, Counter[str]] = {}
    for node in graph.node:
        if node.op_type not in COMPUTE_OPS:
            continue
        kind = types.get(node.input[0], 0) if node.input else 0
        label = {_HALF: "float16", _FLOAT: "float32"}.get(kind, "other")
        by.setdefault(node.op_type, Counter())[label] += 1
    fp16 = sum(c["float16"] for c in by.values())
    fp32 = sum(c["float32"] for c in by.values())
    return {"compute_ops_fp16": fp16, "compute_ops_fp32": fp32,
            "fp16_share": round(fp16 / (fp16 + fp32), 4) if fp16 + fp32 else 0.0,
            "casts": sum(1 for n in graph.node if n.op_type == "Cast"),
            "by_op": {op: dict(sorted(c.items())) for op, c in sorted(by.items())}}
