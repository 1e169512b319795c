"""INT8 for OpenVINO with NNCF: ``nncf.quantize``, ``nncf.quantize_with_accuracy_control``,
``nncf.compress_weights``; the transformer test on an ``openvino.Model``; what the quantized model holds.

NNCF inserts FakeQuantize ops that the OpenVINO CPU plugin executes as int8 kernels. Its defaults
for CPU (preset PERFORMANCE: symmetric int8 weights per channel, activations u8/i8 chosen per
tensor, fast bias correction) are the fastest configuration measured here (~3.5× over f32 on a
ResNet-18-sized net), so edgecraft passes them through and only maps its own params onto NNCF's.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from edgecraft.errors import InputError
from edgecraft.quantize import Int8Evidence, RecipeFinding

#: ONNX operator names users write in keep_float_ops → OpenVINO opset names NNCF's IgnoredScope sees.
ONNX_TO_OV_OPS = {"Conv": "Convolution", "ConvTranspose": "ConvolutionBackpropData", "Gemm": "MatMul",
                  "Softmax": "SoftMax", "AveragePool": "AvgPool", "GlobalAveragePool": "ReduceMean"}


def ignored_scope(model: Any, patterns: list[str], op_types: list[str], where: str) -> Any:
    """An ``nncf.IgnoredScope`` for keep-float globs and op types, checked against the model first."""
    import nncf

    if not patterns and not op_types:
        return None
    ops = list(model.get_ordered_ops())
    names = [op.get_friendly_name() for op in ops]
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(name, pattern) for name in names):
            sample = [op.get_friendly_name() for op in ops if op.get_type_name() in ("Convolution", "MatMul")][:8]
            raise InputError(f"{where}: params.keep_float_layers pattern {pattern!r} matches no operation of "
                             f"the OpenVINO model (weight layers include {sample})",
                             hint="patterns are globs on OpenVINO operation names (ONNX node names, "
                             "Conv becomes '<name>/WithoutBiases')")
    present = {op.get_type_name() for op in ops}
    types = []
    for op in op_types:
        ov_type = ONNX_TO_OV_OPS.get(op, op)
        if ov_type not in present:
            raise InputError(f"{where}: params.keep_float_ops {op!r} is not an operation of the OpenVINO model "
                             f"(present: {sorted(present)})")
        types.append(ov_type)
    return nncf.IgnoredScope(patterns=[fnmatch.translate(p) for p in patterns], types=types, validate=False)


def advanced_parameters(per_channel: bool, calibration_method: str) -> Any:
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        QuantizationParameters,
    )
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    kwargs: dict[str, Any] = {}
    if not per_channel:
        kwargs["weights_quantization_params"] = QuantizationParameters(per_channel=False)
    if calibration_method == "percentile":
        kwargs["activations_range_estimator_params"] = RangeEstimatorParametersSet.QUANTILE
    return AdvancedQuantizationParameters(**kwargs)


def _model_type(transformer: bool) -> dict[str, Any]:
    """NNCF's TRANSFORMER model type for attention models: it keeps Softmax, LayerNorm/MVN and residual Adds
    in float and applies SmoothQuant before calibration (MiniLM: cosine 0.997 vs 0.61 without it)."""
    import nncf

    return {"model_type": nncf.ModelType.TRANSFORMER} if transformer else {}


def quantize(model: Any, samples: list[dict[str, np.ndarray]], *, per_channel: bool, calibration_method: str,
             scope: Any, transformer: bool = False) -> Any:
    import nncf

    return nncf.quantize(model, nncf.Dataset(samples), subset_size=len(samples), ignored_scope=scope,
                         advanced_parameters=advanced_parameters(per_channel, calibration_method),
                         **_model_type(transformer))


def compress_weights(model: Any, scope: Any) -> Any:
    """Int8 weights, float compute: a smaller artifact, not a faster one."""
    import nncf

    return nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM, ignored_scope=scope)


@dataclass
class AccuracyControlResult:
    model: Any
    validations: list[dict[str, Any]] = field(default_factory=list)
    reverted_steps: list[list[str]] = field(default_factory=list)
    reverted_final: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


class _Capture(logging.Handler):
    """Collects NNCF's progress messages: the accuracy restorer reports reverted layers only in its log."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _names_after_colon(message: str) -> list[str]:
    return [line.strip() for line in message.split(":", 1)[1].splitlines() if line.strip()]


def quantize_with_accuracy_control(model: Any, samples: list[dict[str, np.ndarray]], *,
                                   eval_items: list[dict[str, np.ndarray]], output_index: int,
                                   metric_fn: Callable[[np.ndarray, np.ndarray], float],
                                   max_drop: float, relative: bool, per_channel: bool,
                                   calibration_method: str, scope: Any, max_iterations: int,
                                   ranking_samples: int, transformer: bool = False) -> AccuracyControlResult:
    """NNCF's accuracy-controlled quantization; ``metric_fn(outputs, indices)`` scores eval outputs.

    NNCF compiles every candidate on the OpenVINO CPU plugin with f32 inference precision (its
    ``OVPreparedModel``), i.e. on the target runtime, and ranks quantized groups by their effect on
    the outputs of ``ranking_samples`` items before returning them to float one group at a time.
    """
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    validations: list[dict[str, Any]] = []
    full = len(eval_items)

    def validate(compiled: Any, items: Any) -> tuple[float, None]:
        outputs, indices = [], []
        output = compiled.outputs[output_index]
        for x, index in items:
            outputs.append(np.asarray(compiled(x)[output]))
            indices.append(index)
        value = metric_fn(np.concatenate(outputs, axis=0), np.asarray(indices))
        if len(indices) == full:
            validations.append({"value": value, "items": len(indices)})
        return value, None

    items = [(eval_items[i], i) for i in range(full)]
    capture = _Capture()
    logger = logging.getLogger("nncf")
    logger.addHandler(capture)
    try:
        result = nncf.quantize_with_accuracy_control(
            model, nncf.Dataset(samples), nncf.Dataset(items, lambda item: item[0]), validate,
            max_drop=max_drop, drop_type=nncf.DropType.RELATIVE if relative else nncf.DropType.ABSOLUTE,
            subset_size=len(samples), ignored_scope=scope, **_model_type(transformer),
            advanced_quantization_parameters=advanced_parameters(per_channel, calibration_method),
            advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(
                max_num_iterations=max_iterations, ranking_subset_size=min(ranking_samples, full)))
    finally:
        logger.removeHandler(capture)
    out = AccuracyControlResult(result, validations, messages=capture.messages)
    for message in capture.messages:
        if message.startswith("Reverted "):
            out.reverted_steps.append(_names_after_colon(message))
        elif "were reverted back to the floating-point precision" in message:
            out.reverted_final = _names_after_colon(message)
    if not out.reverted_final and out.reverted_steps:
        out.reverted_final = [name for step in out.reverted_steps for name in step]
    return out


def detect_openvino(model: Any) -> RecipeFinding:
    """The same test on an ``openvino.Model``: a Softmax fed by a MatMul whose inputs are both computed."""
    ops = list(model.get_ordered_ops())
    if any(op.get_type_name() == "ScaledDotProductAttention" for op in ops):
        return RecipeFinding("transformer", "a ScaledDotProductAttention op in the OpenVINO model")
    for op in ops:
        if op.get_type_name() not in ("Softmax", "SoftMax"):
            continue
        stack, seen = [op.input_value(0).get_node()], set()
        while stack:
            node = stack.pop()
            if node.get_friendly_name() in seen:
                continue
            seen.add(node.get_friendly_name())
            kind = node.get_type_name()
            if kind == "MatMul" and all(_ov_computed(node.input_value(i).get_node()) for i in range(2)):
                return RecipeFinding("transformer", f"attention: Softmax fed by MatMul {node.get_friendly_name()!r} "
                                 "of two activations (Q·Kᵀ)")
            if kind in ("Add", "Divide", "Multiply", "Select", "Convert", "Reshape", "Subtract", "Transpose",
                        "Slice", "StridedSlice", "Broadcast"):
                stack.extend(node.input_value(i).get_node() for i in range(node.get_input_size()))
    return RecipeFinding("cnn", "no attention block (no Softmax fed by a MatMul of two activations)")


def _ov_computed(node: Any) -> bool:
    """False for weights: a Constant, possibly behind Convert/FakeQuantize-free decompression ops."""
    while node.get_type_name() in ("Convert", "Multiply", "Subtract", "Reshape") and node.get_input_size():
        if node.get_type_name() == "Convert":
            node = node.input_value(0).get_node()
            continue
        return all(_ov_computed(node.input_value(i).get_node()) for i in range(node.get_input_size()))
    return node.get_type_name() != "Constant"


def reference_outputs(model: Any, items: list[dict[str, np.ndarray]], output_index: int, threads: int) -> np.ndarray:
    """The float model's outputs on OpenVINO f32, the reference agreement/cosine metrics compare to."""
    import openvino as ov

    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                      "INFERENCE_NUM_THREADS": threads})
    port = compiled.outputs[output_index]
    return np.concatenate([np.asarray(compiled(item)[port]) for item in items], axis=0)


def ov_facts(model: Any) -> dict[str, Any]:
    """What NNCF inserted (FakeQuantize for int8 compute, Convert for compressed weights)."""
    ops: dict[str, int] = {}
    for op in model.get_ordered_ops():
        name = op.get_type_name()
        if name in ("FakeQuantize", "Convert"):
            ops[name] = ops.get(name, 0) + 1
    return {"openvino_ops": ops}


#: OpenVINO operations with weights NNCF quantizes (its CPU preset's quantizable types).
WEIGHT_OPS = ("Convolution", "GroupConvolution", "ConvolutionBackpropData", "MatMul")


def int8_evidence(before: Any, after: Any) -> Int8Evidence:
    """FakeQuantize ops (int8 compute) and int8/int4 weight constants (compressed weights) NNCF left in ``after``."""
    int8 = 0
    for op in after.get_ordered_ops():
        name = op.get_type_name()
        if name == "FakeQuantize" or (name == "Constant" and op.get_element_type().get_type_name() in (
                "i8", "u8", "i4", "u4")):
            int8 += 1
    why = None
    if not int8:
        ops = [op for op in before.get_ordered_ops() if op.get_type_name() in WEIGHT_OPS]
        nested = sum(1 for op in before.get_ordered_ops() if op.get_type_name() in ("If", "Loop", "TensorIterator"))
        why = ("no quantizable op: the model has no Convolution or MatMul" if not ops and not nested else
               f"no quantizable op outside its {nested} If/Loop/TensorIterator bodies, which NNCF does not enter"
               if not ops else f"NNCF inserted no FakeQuantize for any of its {len(ops)} weight operations")
    return Int8Evidence(int8, "FakeQuantize ops or int8 weight constants", why_none=why)
