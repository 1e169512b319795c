"""Which compute layers ONNX Runtime runs on integer kernels: read from the graph the session actually built.

A QDQ file says nothing by itself: ONNX Runtime fuses DequantizeLinear → Conv → QuantizeLinear into
QLinearConv only at the extended optimization level and above, and at 'basic' runs the same file in float
(FIELD-NOTES). So the session's own optimized graph is dumped (same options, a scratch file) and its
Conv/Gemm/MatMul-class nodes are counted: integer kernels (QLinearConv, QGemm, QLinearMatMul,
MatMulInteger, ConvInteger, DynamicQuantizeMatMul, MatMulIntegerToFloat) against float ones.

Building that session costs a ResNet-18-sized model ~0.3 s idle, ~0.7 s on a loaded machine, in every gate run
(issue 25): :func:`artifact_int8_layers` keeps the count beside the artifact (:mod:`edgecraft.artifact_facts`),
keyed by its manifest, the optimization level, ONNX Runtime's version, the CPU's features and this module.
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


def artifact_int8_layers(model_path: Path, optimization: str, session_options: Any) -> dict[str, Any]:
    """:func:`session_int8_layers` of an artifact's model, read back from its facts when an earlier run counted it
    with the same level, runtime and CPU (a stored value that is not a layer count is ignored: counted again)."""
    import sys

    import onnxruntime as ort
    from edgecraft.artifact_facts import code_digest, fact_key, load_fact, machine_fingerprint, store_fact

    folder = Path(model_path).parent
    key = fact_key(folder, {"fact": "ort-int8-layers", "file": Path(model_path).name, "optimization": optimization,
                            "onnxruntime": ort.__version__, "machine": machine_fingerprint(),
                            "code": code_digest([sys.modules[__name__]])})
    stored = load_fact(folder, "ort-int8-layers", key)
    if (isinstance(stored, dict) and set(stored) == {"int8", "float", "float_layers", "all_int8"}
            and isinstance(stored["all_int8"], bool) and isinstance(stored["float_layers"], list)
            and all(isinstance(stored[k], dict) and all(isinstance(n, int) for n in stored[k].values())
                    for k in ("int8", "float"))):
        return stored
    layers = session_int8_layers(model_path, session_options)
    store_fact(folder, "ort-int8-layers", key, layers)
    return layers
