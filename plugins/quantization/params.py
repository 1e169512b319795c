"""Typed params of the ``quantization`` step (they appear in the plan's JSON Schema)."""

from __future__ import annotations

from typing import Literal

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


class QuantizationParams(StrategyParams):
    """INT8 post-training quantization, compiled per target (ONNX Runtime QDQ, NNCF on OpenVINO)."""

    # Not frozen yet, unlike every other plan section: resolve() and apply() fill in a deep copy field by
    # field. To be dropped once they derive new params with model_copy(update=...) (issue 23, point 4).
    model_config = ConfigDict(frozen=False, validate_assignment=True)

    recipe: Literal["auto", "cnn", "transformer"] = Field(
        "auto", description="'auto': 'transformer' when the model has attention blocks (a Softmax fed by a MatMul "
        "of two activations, Q·Kᵀ), else 'cnn'; detected at compile time from the model source or ONNX graph, or "
        "at apply time from the graph. 'transformer' keeps Softmax, LayerNorm, residual Adds and the attention "
        "mask in float: on ONNX Runtime SmoothQuant + dynamic per-channel int8 on the weight MatMuls (a measured "
        "choice of strength on the calibration data), on OpenVINO NNCF's TRANSFORMER model type. 'cnn': static "
        "QDQ on every quantizable op (ONNX Runtime), NNCF's default model type (OpenVINO).")
    mode: Literal["auto", "static", "dynamic", "weight_only"] = Field(
        "auto", description="'auto': 'static' for the cnn recipe and on OpenVINO, 'dynamic' for the transformer "
        "recipe on ONNX Runtime. 'static': weights and activations in int8, activation ranges from calibration "
        "data; 'dynamic': int8 weights, activation ranges computed at run time (MatMul-heavy models); "
        "'weight_only': int8 weights, float compute (size, not speed; OpenVINO only).")
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
    accuracy_aware: AccuracyAwareParams = Field(default_factory=AccuracyAwareParams)
