"""Typed params of the ``pruning`` step (pure pydantic: no torch import, so registration stays fast).

One step, two modes, because users ask for "pruning" and the honest answer depends on the mode:

* ``structured`` removes whole channels/filters/neurons (Torch-Pruning's dependency graph keeps
  residual adds, concats, BatchNorm and grouped convs consistent). The exported model is smaller
  and faster on every dense runtime.
* ``heads_ffn`` removes whole attention heads and FFN (intermediate) neurons of a BERT-family
  transformer encoder, keeping each layer's head bookkeeping and the Hugging Face config
  consistent, so the exported model is smaller and faster.
* ``unstructured`` zeroes individual weights (``torch.nn.utils.prune``). The dense ONNX file keeps
  every zero, so it is neither smaller nor faster on dense kernels; only a compressed (zipped)
  artifact shrinks. The step reports exactly that.

Range checks that concern the *plan* (a ratio of 1 or more, a missing dataset, a param of the other
mode) are made in ``PruningStrategy.resolve`` so the error names the step; pydantic only checks types
and signs here.
"""

from __future__ import annotations

from typing import Literal

from edgecraft.strategy import StrategyParams
from pydantic import Field

#: Params that only mean something in one mode; setting them in the other mode is a plan error.
STRUCTURED_ONLY = frozenset({"importance", "round_to", "max_layer_ratio", "taylor_batches"})
UNSTRUCTURED_ONLY = frozenset({"pattern"})
#: Params of mode heads_ffn only (it shares importance, round_to, scope, max_layer_ratio, taylor_batches).
HEADS_FFN_ONLY = frozenset({"head_ratio", "ffn_ratio", "loss", "hidden_weight", "round_data", "reconstruct",
                            "reconstruct_samples"})


class PruningParams(StrategyParams):
    """Params of one ``pruning`` step."""

    mode: Literal["structured", "unstructured", "heads_ffn"] = Field(
        "structured", description="'structured': remove whole channels (the model really gets smaller and "
        "faster); 'heads_ffn': remove attention heads and FFN neurons of a transformer encoder (BERT family); "
        "'unstructured': zero individual weights (only a compressed artifact gets smaller).")
    head_ratio: float = Field(
        0.0, ge=0, description="heads_ffn: fraction of each encoder layer's attention heads to remove (uniform "
        "scope), or of all heads (global scope). Every layer keeps at least one head.")
    ffn_ratio: float = Field(
        0.0, ge=0, description="heads_ffn: fraction of each layer's FFN intermediate neurons to remove (uniform), or "
        "of all of them (global). Kept counts round down to a multiple of `round_to` (default 8 in this mode).")
    loss: Literal["mse", "cosine"] = Field(
        "mse", description="heads_ffn recovery without labels: what the pruned model minimises against the unpruned "
        "one: 'mse' on the outputs, or 'cosine' (1 - cos; for sentence-embedding outputs).")
    hidden_weight: float = Field(
        0.0, ge=0, description="heads_ffn recovery: weight of a per-layer hidden-state loss (MSE / teacher "
        "variance) between every pruned layer and the unpruned one; 0 matches the outputs only.")
    round_data: Literal["all", "split"] = Field(
        "all", description="heads_ffn, schedule: gradual: what each recovery round trains on. 'all': the whole "
        "dataset every round (`iterations` times the steps of one-shot); 'split': round r trains on the r-th of "
        "`iterations` equal parts of it (the same steps and sentences as one-shot at the same `epochs`: iterative "
        "pruning at equal cost, each round on fresh text).")
    reconstruct: Literal["least_squares", "mask", "none"] = Field(
        "none", description="heads_ffn, with a dataset: after each cut, re-fit every layer's output projections "
        "(attention output and FFN output Linears) so each sub-layer's output on calibration sentences matches the "
        "unpruned model's, layer by layer: 'least_squares' re-fits the whole projections (ridge-damped), 'mask' "
        "one scale per kept head and neuron (Kwon et al. 2022's mask tuning); 'none' (the default: on MiniLM "
        "both raise the cosine before recovery but the whole-projection fit lowers it after recovery, see "
        "benchmarks/compress_levers.py) leaves the kept weights as they were. Needs params.dataset.")
    reconstruct_samples: int = Field(
        256, ge=1, description="heads_ffn, reconstruct: least_squares or mask: calibration sentences (the "
        "dataset's first ones; padding positions excluded).")
    ratio: float | None = Field(
        None, ge=0, description="Fraction to remove: of each layer's output channels (structured) or of the "
        "prunable weights (unstructured, i.e. the target sparsity). Must be < 1. Optional with `pattern`.")
    scope: Literal["uniform", "global"] = Field(
        "uniform", description="'uniform': every layer loses `ratio`; 'global': channels/weights are ranked "
        "across all layers and the least important `ratio` of the total is removed.")
    layer_ratios: dict[str, float] = Field(
        default_factory=dict, description="Per-layer overrides {module name: ratio}, e.g. {'stem.0': 0.25}. "
        "Names are as in `model.named_modules()`; fnmatch patterns ('blocks.*.conv1') are allowed. heads_ffn: "
        "keys are encoder layers ('model.encoder.layer.3', a glob, or the index '3') and the ratio replaces both "
        "head_ratio and ffn_ratio there.")
    ignored_layers: list[str] = Field(
        default_factory=list, description="Module names (fnmatch patterns allowed) never pruned. The layers that "
        "produce the model's output are always kept whole (the output shape must not change).")
    # ---- structured
    importance: Literal["l1", "l2", "bn_scale", "taylor"] = Field(
        "l2", description="Channel importance: 'l1'/'l2' weight magnitude, 'bn_scale' BatchNorm |gamma| "
        "(network slimming), 'taylor' first-order Taylor |w*dL/dw| on `dataset` (data-aware).")
    round_to: int | None = Field(
        None, ge=1, description="Keep a multiple of this many channels per layer (hardware-friendly shapes).")
    max_layer_ratio: float = Field(
        0.9, gt=0, lt=1, description="'global' scope: no layer loses more than this fraction of its channels.")
    taylor_batches: int = Field(4, ge=1, description="'taylor': training batches whose gradients score channels.")
    # ---- unstructured
    pattern: str | None = Field(
        None, description="N:M semi-structured sparsity, e.g. '2:4' keeps the 2 largest of every 4 consecutive "
        "input weights (sparsity (M-N)/M). Unstructured mode only.")
    # ---- schedule and fine-tuning
    schedule: Literal["one_shot", "gradual"] = Field(
        "one_shot", description="'one_shot': prune once, then fine-tune; 'gradual': prune in `iterations` "
        "rounds (cubic sparsity schedule for unstructured, linear channel schedule for structured), "
        "fine-tuning `epochs` after each round.")
    iterations: int = Field(4, ge=1, description="Pruning rounds of the 'gradual' schedule.")
    dataset: str | None = Field(
        None, description="Name of a training dataset of the plan, for fine-tuning and 'taylor'. With labels the "
        "loss is cross-entropy; without, the pruned model imitates the unpruned one (MSE on outputs).")
    epochs: int = Field(0, ge=0, description="Fine-tuning epochs after each pruning round (0: no fine-tuning).")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate for fine-tuning.")
    batch_size: int = Field(64, ge=1)
