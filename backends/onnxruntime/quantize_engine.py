"""INT8 for ONNX Runtime with ``onnxruntime.quantization``: pre-processing, QDQ static, dynamic.

Defaults, and why (measured on this project's CPU, an AVX-512 VNNI part, ResNet-18-sized net,
batch 1, 2 threads; see benchmarks/quantization.py):

* **QDQ format, per-channel weights, after ``quant_pre_process``.** Pre-processing folds BatchNorm
  and runs shape inference so every Conv gets a quantized twin; per-channel scales keep accuracy
  without calibration tricks. ORT fuses DQ→Conv→Q into QLinearConv at session creation.
* **uint8 activations × int8 weights (U8S8).** x86 int8 GEMM kernels are built on ``vpdpbusd`` (VNNI)
  / ``vpmaddubsw`` (AVX2), which multiply *unsigned* by *signed* bytes. With U8S8 the QDQ model ran
  ~2.5× faster than fp32; with S8S8 (``quantize_static``'s default) ORT has to shift activations and
  the same model ran *slower* than fp32 (0.85×). Per-tensor S8S8 without pre-processing (all of
  ``quantize_static``'s defaults) ran at 0.5× of fp32.
* **reduce_range off with VNNI, on without.** AVX2's ``vpmaddubsw`` adds pairs of u8×s8 products into
  int16 and can saturate; 7-bit weights avoid that. VNNI accumulates into int32 directly, so full 8-bit
  weights are safe there and more accurate.
* **Dynamic quantization for transformers, not CNNs.** ``quantize_dynamic`` turns Conv into ConvInteger,
  which was slower than fp32 on CNNs here; it wins on MatMul-heavy (transformer) models, where the
  transformer recipe (:mod:`.quantize_recipes`) uses it on the weight MatMuls only, after SmoothQuant.
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from edgecraft.errors import InputError

#: Ops with weights: the "layers" the accuracy-aware loop can return to float.
WEIGHT_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


@dataclass(frozen=True)
class OrtQuantConfig:
    mode: str  # static | dynamic
    per_channel: bool
    calibration_method: str  # minmax | entropy | percentile
    percentile: float
    activation_type: str  # uint8 | int8
    weight_type: str  # int8 | uint8
    reduce_range: bool
    #: Operator types to quantize (None: the tool's defaults). The transformer recipe names only the weight
    #: ops, so Softmax, LayerNorm, Add and the attention-mask arithmetic are never given Q/DQ pairs.
    op_types: tuple[str, ...] | None = None


def cpu_has_vnni() -> bool:
    """True when the local x86 CPU has AVX-512 VNNI or AVX-VNNI (read once, in :mod:`edgecraft.cpu`)."""
    from edgecraft.cpu import has_vnni

    return has_vnni()


#: Per-channel QDQ writes ``DequantizeLinear(axis=...)``, which needs opset 13; models from the wild
#: (PaddleOCR, older exporters) are often at opset 11 or 12.
MIN_QDQ_OPSET = 13


def upgrade_opset(src: Path, dst: Path, minimum: int = MIN_QDQ_OPSET) -> tuple[Path, str | None]:
    """Convert ``src`` to ``minimum`` with onnx's version converter when its default-domain opset is lower.

    Returns the file to use and a note for the step's details (None when nothing was done). If the
    converter cannot convert the graph, the original is returned with a note; the caller then
    falls back to per-tensor quantization, which opset 10+ can express.
    """
    import onnx
    from onnx import version_converter

    proto = onnx.load(str(src))
    current = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), minimum)
    if current >= minimum:
        return src, None
    try:
        converted = version_converter.convert_version(proto, minimum)
        onnx.checker.check_model(converted)
        onnx.save(converted, str(dst))
    except Exception as exc:
        return src, (f"opset {current} could not be upgraded to {minimum} ({type(exc).__name__}: "
                     f"{str(exc).splitlines()[0][:200] if str(exc) else ''})")
    return dst, f"opset upgraded {current} -> {minimum} (onnx version converter) for per-channel QDQ"


def opset_of(path: Path) -> int:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


def preprocess(src: Path, dst: Path) -> tuple[Path, str]:
    """``quant_pre_process`` (optimization + shape inference); returns the file to quantize and a note.

    Symbolic shape inference fails on some exported subgraphs (attention masks); ORT's own advice is
    to skip it then, so that is the fallback, and the original graph is used only if both fail.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    last: Exception | None = None
    for skip_symbolic in (False, True):
        try:
            # ORT's symbolic shape inference saves 'sym_shape_infer_temp.onnx' into the working directory
            # when it cannot finish: run it in the output folder, never the user's.
            with contextlib.chdir(dst.parent):
                quant_pre_process(str(src.resolve()), str(dst.resolve()), skip_symbolic_shape=skip_symbolic)
            return dst, "quant_pre_process" + (" (skip_symbolic_shape)" if skip_symbolic else "")
        except Exception as exc:
            last = exc
    return src, f"quant_pre_process failed ({type(last).__name__}: {str(last)[:200]}); quantized the graph as exported"


def node_names(path: Path) -> list[tuple[str, str]]:
    """(name, op_type) of every node, in graph order."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return [(n.name, n.op_type) for n in model.graph.node]


def match_keep_float(path: Path, patterns: list[str], op_types: list[str], where: str) -> list[str]:
    """Node names matched by ``keep_float_layers`` globs and ``keep_float_ops``; unmatched patterns are errors."""
    nodes = node_names(path)
    chosen: list[str] = []
    for pattern in patterns:
        hits = [name for name, _ in nodes if fnmatch.fnmatchcase(name, pattern)]
        if not hits:
            sample = [name for name, op in nodes if op in WEIGHT_OPS][:8]
            raise InputError(f"{where}: params.keep_float_layers pattern {pattern!r} matches no node of the "
                             f"model (weight layers include {sample})",
                             hint="patterns are globs on ONNX node names after pre-processing")
        chosen += hits
    present = {op for _, op in nodes}
    for op in op_types:
        if op not in present:
            raise InputError(f"{where}: params.keep_float_ops {op!r} is not an operator of the model "
                             f"(present: {sorted(present)})")
        chosen += [name for name, node_op in nodes if node_op == op]
    return sorted(set(chosen))


class _Reader:
    """``CalibrationDataReader`` over in-memory batches (subclassing is optional for ORT's calibrators)."""

    def __init__(self, batches: list[dict[str, np.ndarray]]) -> None:
        self._batches = batches
        self._it = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter(self._batches)


def _qtype(name: str) -> Any:
    from onnxruntime.quantization import QuantType

    return {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}[name]


def quantize(src: Path, dst: Path, config: OrtQuantConfig, *, batches: list[dict[str, np.ndarray]],
             exclude: list[str], calibration_cache: Path | None = None) -> Path:
    """Quantize ``src`` (already pre-processed) into ``dst``; ``exclude`` nodes stay in float.

    ``calibration_cache`` (ORT's JSON range cache) makes re-quantizing with other exclusions skip
    calibration: activation ranges do not depend on which nodes are quantized.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, quantize_dynamic, quantize_static

    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))  # ORT's calibrator is chatty
    ops: dict[str, Any] = {} if config.op_types is None else {"op_types_to_quantize": list(config.op_types)}
    if config.mode == "dynamic":
        # MatMulConstBOnly (dynamic's default, made explicit): activation x activation MatMuls (Q·Kᵀ) stay float.
        quantize_dynamic(str(src), str(dst), per_channel=config.per_channel, reduce_range=config.reduce_range,
                         weight_type=_qtype(config.weight_type), nodes_to_exclude=list(exclude),
                         extra_options={"MatMulConstBOnly": True}, **ops)
        return dst
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[config.calibration_method]
    extra: dict[str, Any] = {} if config.op_types is None else {"MatMulConstBOnly": True}
    if config.calibration_method == "percentile":
        extra["CalibPercentile"] = config.percentile
    quantize_static(str(src), str(dst), _Reader(batches), quant_format=QuantFormat.QDQ,
                    per_channel=config.per_channel, reduce_range=config.reduce_range,
                    activation_type=_qtype(config.activation_type), weight_type=_qtype(config.weight_type),
                    nodes_to_exclude=list(exclude), calibrate_method=method, extra_options=extra, **ops,
                    calibration_cache_path=None if calibration_cache is None else str(calibration_cache))
    return dst


#: Ops that pass a quantized tensor through (ORT's QDQ quantizer fuses Relu/Clip into the producer's output
#: quantization and keeps the others in the int8 domain), walked back from a layer to form its group.
PASS_THROUGH = ("Relu", "Clip", "Reshape", "Flatten", "Transpose", "MaxPool", "Squeeze", "Unsqueeze")


def layer_groups(path: Path, skip: set[str]) -> list[list[str]]:
    """One group per weight layer: the layer, the pass-through ops feeding it, and their producer.

    Excluding a Conv alone from ORT's QDQ quantizer does not give it a float input: a quantized
    producer (a Conv, an Add) still emits a Q/DQ pair on its output, and a Relu in between is fused
    into that pair. Measured on a model with a range outlier, excluding only the consumer recovered
    little; excluding consumer, Relu and producer recovered fully. So a group holds everything whose
    exclusion makes the layer compute in float on a float input.
    """
    import onnx

    nodes = onnx.load(str(path), load_external_data=False).graph.node
    producer = {out: n for n in nodes for out in n.output}
    consumers: dict[str, int] = {}
    for n in nodes:
        for name in n.input:
            consumers[name] = consumers.get(name, 0) + 1
    groups = []
    for n in nodes:
        if n.op_type not in WEIGHT_OPS or not n.name or n.name in skip:
            continue
        group, tensor = [n.name], n.input[0]
        while tensor in producer and producer[tensor].op_type in PASS_THROUGH and consumers.get(tensor, 0) == 1:
            group.append(producer[tensor].name)
            tensor = producer[tensor].input[0]
        if tensor in producer and producer[tensor].name and producer[tensor].name not in skip:
            group.append(producer[tensor].name)
        groups.append(group)
    return groups


def rank_sensitivity(float_path: Path, quantize_excluding: Callable[[list[str]], Path], groups: list[list[str]],
                     batches: list[dict[str, np.ndarray]], threads: int) -> list[tuple[list[str], float]]:
    """Layer groups ranked by how much returning each one alone to float reduces the output error.

    Measured on ONNX Runtime (the target runtime): the fully quantized model and one model per group
    with that group kept in float run on the same samples, and a group's score is the drop in relative
    L2 error of the final output versus the float model. Re-quantizing reuses the calibration cache, so
    a ranking costs one quantization pass and ``len(batches)`` inferences per group, no accuracy
    evaluation. Hand-written because ``onnxruntime.quantization.qdq_loss_debug`` reports accumulated
    per-tensor error, which hides a layer whose damage only shows downstream (a range outlier).
    """
    reference = _outputs(float_path, batches, threads)

    def error(path: Path) -> float:
        got = _outputs(path, batches, threads)
        return float(np.linalg.norm(got - reference) / max(float(np.linalg.norm(reference)), 1e-12))

    full = error(quantize_excluding([]))
    scores = [(group, full - error(quantize_excluding(group))) for group in groups]
    return sorted(scores, key=lambda item: item[1], reverse=True)


def _outputs(path: Path, batches: list[dict[str, np.ndarray]], threads: int) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return np.concatenate([np.ravel(session.run(None, b)[0]) for b in batches], axis=0).astype(np.float64)


def graph_facts(before: Path, after: Path) -> dict[str, Any]:
    """Sizes and what the quantized ONNX graph holds (so the report shows int8 really is there)."""
    import onnx

    graph = onnx.load(str(after), load_external_data=False).graph
    ops: dict[str, int] = {}
    for node in graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    int8_weights = sum(1 for t in graph.initializer if t.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
                       and len(t.dims) > 1)
    return {"onnx_bytes_before": before.stat().st_size, "onnx_bytes_after": after.stat().st_size,
            "int8_weight_tensors": int8_weights,
            "quantize_ops": {k: v for k, v in sorted(ops.items()) if k in (
                "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger")}}


WEIGHT_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
SUBGRAPH_OPS = ("If", "Loop", "Scan")


def int8_weight_layers(path: Path) -> int:
    """Weight layers (Conv, MatMul, Gemm) whose weight is an int8/uint8 tensor in the graph at ``path``: read through
    a DequantizeLinear (QDQ), or integer ops (MatMulInteger, ConvInteger, QLinear*). A quantized Add constant or
    bias does not count: it makes nothing compute in int8."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    int8_inits = {t.name for t in graph.initializer if t.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)}
    dequantized = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in int8_inits}
    integer = ("MatMulInteger", "ConvInteger", "QLinearConv", "QLinearMatMul", "QGemm")
    return sum(1 for node in graph.node if node.op_type in integer or (
        node.op_type in WEIGHT_OPS and len(node.input) > 1 and node.input[1] in dequantized))


def why_no_int8(path: Path, kept: list[str]) -> str:
    """Why onnxruntime.quantization left no int8 weight in the graph at ``path``: what the graph holds."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    inits = {t.name for t in graph.initializer}
    main = [n for n in graph.node if n.op_type in WEIGHT_OPS and len(n.input) > 1 and n.input[1] in inits]

    def nested(g: Any) -> int:
        count = 0
        for node in g.node:
            for attr in node.attribute:
                for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                    count += sum(1 for n in sub.node if n.op_type in WEIGHT_OPS) + nested(sub)
        return count

    inside = nested(graph)
    if main and kept and {n.name for n in main} <= set(kept):
        return f"every one of its {len(main)} weight layers is kept in float (keep_float_layers/keep_float_ops)"
    if not main and inside:
        subgraphs = sorted({n.op_type for n in graph.node if n.op_type in SUBGRAPH_OPS})
        return (f"no quantizable op in the main graph: its {inside} Conv/MatMul/Gemm op(s) sit inside "
                f"{'/'.join(subgraphs)} subgraphs, which onnxruntime.quantization does not enter")
    if not main:
        return "no quantizable op: the graph has no Conv, MatMul or Gemm with a constant weight"
    return (f"the quantizer left all {len(main)} weight layers in float (every one fell back: their weights or "
            "activations could not be quantized)")


def float_ops(path: Path) -> dict[str, int]:
    """Counts of the sensitive op types left in float in a quantized graph (what the transformer recipe keeps)."""
    import onnx

    ops: dict[str, int] = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        if node.op_type in ("Softmax", "LayerNormalization", "Add", "ReduceMean", "Erf", "Gelu", "Where"):
            ops[node.op_type] = ops.get(node.op_type, 0) + 1
    return ops
