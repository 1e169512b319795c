"""Typed params of the ``quantization`` step (they appear in the plan's JSON Schema), and the runtime-neutral
request a backend's int8 implementation receives (:class:`edgecraft.quantize.Int8Request`)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from edgecraft.quantize import Int8Request
from edgecraft.strategy import StrategyParams
from pydantic import BaseModel, ConfigDict, Field


class AccuracyAwareParams(BaseModel):
    """Return the most sensitive layers to float, one group at a time, until the accuracy contract holds."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    enabled: Literal["auto", "on", "off"] = Field(
        "auto", description="'auto': on when the plan has an accuracy contract for the target; 'on' requires "
        "one; 'off' quantizes once and lets the contract verdict speak.")
    max_evaluations: int = Field(
        8, ge=1, le=200, description="Budget: accuracy evaluations on the target runtime, the fully quantized "
        "model's included.")
    group_size: int = Field(1, ge=1, le=64, description="Layers returned to float per step.")
    ranking_samples: int = Field(
        32, ge=1, le=2048, description="Calibration samples used to rank layers by sensitivity.")


class QatParams(BaseModel):
    """Quantization-aware training (``mode: qat``): fine-tune with int8 simulated, then export the int8 graph."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    dataset: str | None = Field(None, description="Training data (a dataset of the plan). null: calibration_dataset.")
    epochs: int = Field(3, ge=1, le=1000, description="Training epochs with int8 simulated.")
    lr: float = Field(1e-4, gt=0, le=1.0, description="Adam learning rate (cosine decay to 0): small, the model "
                      "is already trained and only learns to live with int8.")
    batch_size: int = Field(64, ge=1, le=65536)
    loss: Literal["auto", "labels", "distill"] = Field(
        "auto", description="'distill': match the float model (the step's input; KL at `temperature`), the "
        "default when the data has no labels; 'labels': cross-entropy; 'auto': distill, mixed half and half "
        "with cross-entropy when the data has labels.")
    temperature: float = Field(2.0, gt=0, le=100, description="Softening of the distillation targets.")
    freeze_ranges_after: float = Field(
        0.5, ge=0.0, le=1.0, description="Share of the training after which activation ranges stop following "
        "the data (exponential moving average) and are fixed: the weights then adapt to the final ranges.")


class QuantizationParams(StrategyParams):
    """INT8 post-training quantization, compiled per target (ONNX Runtime QDQ, NNCF on OpenVINO), or half precision
    (``mode: fp16``) where the target's runtime computes in fp16."""

    recipe: Literal["auto", "cnn", "transformer", "hybrid"] = Field(
        "auto", description="'auto': 'transformer' when the model has attention blocks (a Softmax fed by a MatMul "
        "of two activations, Q·Kᵀ), 'hybrid' when it also has a convolutional part (at least 4 Convs holding at "
        "least 10% of the weights: a CNN backbone with an attention neck), else 'cnn'; detected at compile time "
        "from the model source or ONNX graph, or at apply time from the graph. 'transformer' keeps Softmax, "
        "LayerNorm, residual Adds and the attention mask in float: on ONNX Runtime SmoothQuant + dynamic "
        "per-channel int8 on the weight MatMuls (a measured choice of strength on the calibration data), on "
        "OpenVINO NNCF's TRANSFORMER model type. 'cnn': static "
        "QDQ on every quantizable op (ONNX Runtime), NNCF's default model type (OpenVINO). 'hybrid': each part its "
        "recipe in one quantization: on ONNX Runtime static per-channel QDQ on the Convs (after exact float "
        "folds of constant affines and hard-swish) and dynamic per-channel int8 on the weight MatMuls, with "
        "Softmax, LayerNorm and residual Adds in float; on OpenVINO NNCF's TRANSFORMER model type (which "
        "quantizes the Convs too).")
    mode: Literal["auto", "static", "dynamic", "weight_only", "qat", "fp16"] = Field(
        "auto", description="'auto': 'static' for the cnn recipe and on OpenVINO, 'dynamic' for the transformer "
        "recipe on ONNX Runtime. 'static': weights and activations in int8, activation ranges from calibration "
        "data; 'dynamic': int8 weights, activation ranges computed at run time (MatMul-heavy models); "
        "'weight_only': int8 weights, float compute (size, not speed; OpenVINO only); 'qat': quantization-aware "
        "training in torch (see `qat`), exported as an int8 QDQ graph every int8 target runs as it is. 'fp16': no "
        "int8; the model computes in half precision (float32 inputs and outputs) on targets whose runtime computes "
        "in fp16 (ort-aarch64, executorch-* on a CPU with fp16 arithmetic), refused at compile time elsewhere; "
        "keep_float_layers/keep_float_ops stay float32. The baseline stays fp32, so contracts judge fp16's cost.")
    per_channel: bool = Field(True, description="One weight scale per output channel (per tensor if false).")
    calibration_method: Literal["minmax", "entropy", "percentile"] = Field(
        "minmax", description="How activation ranges are chosen from calibration data. 'entropy' is ONNX "
        "Runtime only.")
    percentile: float = Field(99.999, gt=90, le=100,
                              description="Percentile kept by calibration_method 'percentile' (ONNX Runtime).")
    calibration_dataset: str | None = Field(None, description="Name of a dataset in the plan's data (static mode).")
    calibration_samples: int = Field(128, ge=1, le=100_000, description="Samples used for calibration.")
    smooth_alpha: float | None = Field(
        None, ge=0.0, le=1.0, description="Transformer recipe on ONNX Runtime: SmoothQuant strength (the share of "
        "the activation range moved into the weights). null: measured on the calibration data among no "
        "smoothing and 0.6/0.75; 0: no smoothing. Needs calibration_dataset.")
    activation_type: Literal["auto", "uint8", "int8"] = Field(
        "auto", description="'auto': uint8 on ONNX Runtime x86 (fastest with VNNI), int8 on ARM, NNCF's per-tensor "
        "choice on OpenVINO.")
    weight_type: Literal["auto", "int8", "uint8"] = Field("auto", description="'auto': int8 (symmetric).")
    reduce_range: bool | None = Field(
        None, description="7-bit weights (ONNX Runtime). null: off on CPUs with VNNI, on without (avoids "
        "saturation in AVX2's u8*s8 instruction).")
    keep_float_layers: list[str] = Field(
        default_factory=list, description="Layers kept in float: glob patterns on the graph's node names "
        "(e.g. '/head/*'). A pattern matching nothing is an error.")
    keep_float_ops: list[str] = Field(
        default_factory=list, description="Operator types kept in float (e.g. ['Softmax', 'Add']).")
    float_precision: Literal["fp32", "fp16"] = Field(
        "fp32", description="What the layers an int8 step leaves in float compute in: the keep_float_* layers, the "
        "recipe's float ops and the layers the accuracy-aware search returns to float. 'fp16': int8 with fp16 "
        "fallback layers, on targets whose runtime computes in fp16 (ort-aarch64, static int8), refused at compile "
        "time elsewhere. The accuracy-aware search chooses the float layers in fp32; the contract judges the final "
        "int8+fp16 model.")
    accuracy_aware: AccuracyAwareParams = Field(default_factory=AccuracyAwareParams)
    qat: QatParams = Field(default_factory=QatParams, description="Settings of mode 'qat' (ignored otherwise).")


#: Params carried into the request as they are (the rest: keep-float lists become tuples, accuracy_aware a bool).
_SAME = ("recipe", "mode", "per_channel", "calibration_method", "percentile", "calibration_dataset",
         "calibration_samples", "smooth_alpha", "activation_type", "weight_type", "reduce_range")


def to_request(p: QuantizationParams, *, accuracy_contracts: int = 0) -> Int8Request:
    """The request a backend sees: the params, frozen (``accuracy_aware`` true only once settled 'on')."""
    return Int8Request(**{name: getattr(p, name) for name in _SAME}, keep_float_layers=tuple(p.keep_float_layers),
                       keep_float_ops=tuple(p.keep_float_ops), accuracy_aware=p.accuracy_aware.enabled == "on",
                       accuracy_contracts=accuracy_contracts)


def with_request(p: QuantizationParams, request: Int8Request) -> QuantizationParams:
    """``p`` completed from a settled request: what the compiled plan records (and its cache key hashes)."""
    values = dataclasses.asdict(request)
    update = {name: values[name] for name in _SAME}
    update["keep_float_layers"] = list(request.keep_float_layers)
    update["keep_float_ops"] = list(request.keep_float_ops)
    update["accuracy_aware"] = p.accuracy_aware.model_copy(
        update={"enabled": "on" if request.accuracy_aware else "off"})
    return p.model_copy(update=update)
