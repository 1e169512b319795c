"""Which compute layers ONNX Runtime runs on integer kernels: read from the graph the session actually built.

A QDQ file says nothing by itself: ONNX Runtime fuses DequantizeLinear → Conv → QuantizeLinear into
QLinearConv only at the extended optimization level and above, and at 'basic' runs the same file in float
(FIELD-NOTES). So the session's own optimized graph is dumped (same options, a scratch file) and its
Conv/Gemm/MatMul-class nodes are counted: integer kernels (QLinearConv, QGemm, QLinearMatMul,
MatMulInteger, ConvInteger, DynamicQuantizeMatMul, MatMulIntegerToFloat) against float ones.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

INT8_OPS = frozenset({"QLinearConv", "QGemm", "QLinearMatMul", "MatMulInteger", "ConvInteger",
                      "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QAttention"})
FLOAT_OPS = frozenset({"Conv", "FusedConv", "NchwcConv", "Gemm", "MatMul", "FusedMatMul", "FusedGemm",
                       "ConvTranspose", "Attention"})


def count_layers(op_types: list[str], names: list[str]) -> dict[str, Any]:
    """``{"int8": {op: n}, "float": {op: n}, "float_layers": [...], "all_int8": bool}`` for these nodes."""
    int8 = Counter(op for op in op_types if op in INT8_OPS)
    floats = Counter(op for op in op_types if op in FLOAT_OPS)
    float_names = [n for op, n in zip(op_types, names, strict=True) if op in FLOAT_OPS]
    return {"int8": dict(int8), "float": dict(floats), "float_layers": float_names[:20],
            "all_int8": bool(int8) and not floats}


def session_int8_layers(model_path: Path, session_options: Any) -> dict[str, Any]:
    """Count the compute layers of ``model_path`` as ONNX Runtime optimizes it with ``session_options``."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="edgecraft-ortgraph-") as tmp:
        out = Path(tmp) / "optimized.onnx"
        session_options.optimized_model_filepath = str(out)
        ort.InferenceSession(str(model_path), session_options, providers=["CPUExecutionProvider"])
        graph = onnx.load(str(out), load_external_data=False).graph
    return count_layers([n.op_type for n in graph.node], [n.name for n in graph.node])
