"""The ``factorization`` step's params (no torch import: plan validation and the JSON schema use this).

Numeric ranges (rank >= 1, target/ratio/energy in (0, 1]) are checked by ``resolve`` rather than by
pydantic bounds, so that a bad value is a compile error naming the step, like every other
step-level mistake.
"""

from __future__ import annotations

from typing import Literal

from edgecraft.strategy import StrategyParams
from pydantic import Field

DEFAULT_CANDIDATES = [0.125, 0.25, 0.375, 0.5, 0.625, 0.75]


class FactorizationParams(StrategyParams):
    """Replace Linear/Conv2d layers by products of smaller ones (truncated SVD, spatial SVD, Tucker-2)."""

    # ---- how each layer is factorized
    conv_method: Literal["auto", "spatial", "tucker"] = Field(
        "auto", description="k×k convolutions: 'spatial' (k×1 then 1×k, spatial SVD), 'tucker' (1×1, k×k core, "
        "1×1; Tucker-2), or 'auto': Tucker-2 when the layer has at least 16 input and output channels, else "
        "spatial SVD. Linear layers and 1×1 convolutions always use truncated SVD; grouped convolutions are "
        "left alone.")
    method: Literal["auto", "svd", "activation_aware"] = Field(
        "auto", description="Linear layers: 'svd' truncates the weights (keeps the largest weight energy); "
        "'activation_aware' truncates W·S, S from the layer inputs' second moment on calibration data "
        "(SVD-LLM's whitening: keeps what changes the outputs most, far better on transformers, whose few huge "
        "hidden dimensions plain SVD ignores); 'auto': activation_aware on a transformer encoder when "
        "calibration data is given (`sensitivity_data`, else `train`), else svd.")
    calibration_samples: int = Field(
        128, ge=1, description="activation_aware: samples of the calibration data whose Linear-layer inputs are "
        "measured (token inputs run one sample at a time without padding). More is better while it is small next "
        "to the layers' widths: all-MiniLM-L6-v2 at 65% of the encoder Linears' params, same ranks, held-out cosine "
        "before recovery 0.898 with 128 sentences and 0.912 with 512.")
    whitening: Literal["one_shot", "sequential", "sequential_refit"] = Field(
        "one_shot", description="activation_aware: where each Linear's input statistics come from. 'one_shot': "
        "the original model (every layer as if the ones before it were exact); 'sequential': once the ranks are "
        "chosen, layer by layer in forward order, each on the inputs the factorized layers before it produce "
        "(SVD-LLM v2); 'sequential_refit': the same, fitting each layer to the original model's outputs of that "
        "layer (a least-squares refit that also corrects what the layers before it changed). The sequential "
        "fits cost about two forward passes per factorized layer and calibration sample.")
    # ---- rank selection (set one of rank / ratio / energy / target, or name the mode in `selection`)
    selection: Literal["energy", "ratio", "rank", "target"] | None = Field(
        None, description="Rank selection mode; inferred from whichever of rank/ratio/energy/target is set "
        "(default: energy 0.9).")
    rank: int | None = Field(None, description="Fixed rank for every layer (capped at the layer's full rank; "
                             "both channel ranks for Tucker-2).")
    ratio: float | None = Field(None, description="Fraction of each layer's full rank kept, in (0, 1].")
    energy: float | None = Field(None, description="Fraction of squared singular values kept per layer, in (0, 1] "
                                 "(per channel mode for Tucker-2).")
    target: float | None = Field(
        None, description="Whole-model target: fraction of `cost` to keep, in (0, 1]. Ranks are chosen per "
        "layer by a greedy search over measured sensitivities on `sensitivity_data`.")
    cost: Literal["params", "macs", "latency"] = Field(
        "params", description="What `target` is a fraction of, and what must drop for a layer to be factorized: "
        "parameters, multiply-accumulates, or measured per-layer latency (needs `latency`).")
    candidates: list[float] = Field(
        default_factory=lambda: list(DEFAULT_CANDIDATES),
        description="Target mode: fractions of full rank tried per layer in the sensitivity analysis.")
    multiple: int = Field(8, ge=1, description="Ranks are rounded up to a multiple of this (SIMD-friendly widths).")
    latency: Literal["none", "torch", "ort"] = Field(
        "none", description="Time each layer and its candidates in isolation on this runtime and drop candidates "
        "that are not faster than the original layer ('ort': ONNX Runtime CPU, 'torch': eager torch).")
    include: list[str] = Field(default_factory=lambda: ["*"],
                               description="Layer name patterns (fnmatch) to consider, e.g. ['features.*'].")
    exclude: list[str] = Field(default_factory=list, description="Layer name patterns to leave alone.")
    sensitivity_data: str | None = Field(
        None, description="Plan dataset for the sensitivity analysis (default: evaluation.dataset).")
    sensitivity_samples: int = Field(256, ge=1, description="Samples of sensitivity_data used.")
    # ---- recovery
    recover: Literal["none", "finetune", "distill"] = Field(
        "none", description="After factorizing: 'finetune' (cross-entropy on `train` labels) or 'distill' "
        "(from the plan's original model, with the distillation plugin's loop).")
    train: str | None = Field(None, description="Plan dataset for recovery (required when recover is not 'none').")
    epochs: int = Field(3, ge=1, description="Recovery epochs.")
    lr: float = Field(5e-4, gt=0, description="Recovery learning rate (Adam).")
    batch_size: int = Field(64, ge=1, description="Recovery batch size.")
    recover_loss: Literal["auto", "kl", "mse", "cosine"] = Field(
        "auto", description="recover: distill: what the factorized model minimises against the original: 'kl' "
        "(T=4, mixed with labels), 'mse' on the outputs, 'cosine' (1 - cos, for embedding models), or 'auto' "
        "(kl when the train data has labels, else mse).")
    hidden_weight: float = Field(
        0.0, ge=0, description="recover: distill on a transformer encoder: weight of a per-layer hidden-state loss "
        "(MSE / teacher variance) between each factorized layer's output and the original's.")
