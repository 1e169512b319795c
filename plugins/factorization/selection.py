"""Rank selection: which rank(s) each layer gets, by energy, by ratio, by fixed rank, or by a whole-model target.

The target mode is a greedy search over measured sensitivities: every candidate rank of every
layer is tried alone (the rest of the model untouched) on evaluation data, giving a loss increase
and a cost saving per candidate; then, starting from the unfactorized model, the move with the
smallest loss increase per unit of cost saved is taken repeatedly until the whole model's cost is
within the target. Per-layer losses are treated as additive, the usual first-order assumption of
per-layer compression-ratio search; the combined loss is measured afterwards and reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from edgecraft.plugins.factorization.cost import LayerCost
from edgecraft.plugins.factorization.decompose import max_rank, singular_values
from torch import nn


@dataclass
class Candidate:
    """One way to factorize a layer, with its measured/computed consequences."""

    ranks: tuple[int, ...]
    cost: LayerCost
    fraction: float | None = None
    latency: float | None = None
    delta_loss: float | None = None

    def value(self, metric: str) -> float:
        return cost_value(self.cost, self.latency, metric)


@dataclass
class LayerChoice:
    """A factorizable layer: its shape facts, the candidates kept, and the one chosen (None = unchanged)."""

    name: str
    kind: str
    method: str
    in_shape: tuple[int, ...]
    original: LayerCost
    original_latency: float | None = None
    candidates: list[Candidate] = field(default_factory=list)
    chosen: Candidate | None = None
    reason: str = ""

    def value(self, metric: str) -> float:
        return self.chosen.value(metric) if self.chosen else cost_value(self.original, self.original_latency,
                                                                         metric)

    def original_value(self, metric: str) -> float:
        return cost_value(self.original, self.original_latency, metric)


def cost_value(cost: LayerCost, latency: float | None, metric: str) -> float:
    if metric == "params":
        return float(cost.params)
    if metric == "macs":
        return float(cost.macs)
    if metric == "latency":
        if latency is None:
            raise ValueError("latency cost requested but the layer was not timed")
        return latency
    raise ValueError(f"unknown cost metric {metric!r}")


def default_method(layer: nn.Module, conv_method: str) -> str | None:
    """The method for ``layer`` given the ``conv_method`` param; None when the layer cannot be factorized.

    ``auto`` picks by shape: Linear and 1×1 convolutions are matrices (truncated SVD); a k×k
    convolution with at least 16 input and output channels has channel redundancy for Tucker-2 to
    remove; one with fewer (a stem seeing 1–3 image channels) can only gain from kernel
    separability, which is what spatial SVD exploits.
    """
    if isinstance(layer, nn.Linear):
        return "svd"
    if not isinstance(layer, nn.Conv2d) or layer.groups != 1 or isinstance(layer.padding, str):
        return None
    if layer.kernel_size == (1, 1):
        return "svd"
    if conv_method != "auto":
        return conv_method
    return "tucker" if min(layer.in_channels, layer.out_channels) >= 16 else "spatial"


def round_rank(value: float, full: int, multiple: int) -> int:
    """Round up to a multiple of ``multiple`` (hardware-friendly widths), within 1..full."""
    rounded = max(multiple, math.ceil(value / multiple) * multiple)
    return max(1, min(full, rounded))


def ranks_for_fraction(layer: nn.Module, method: str, fraction: float, multiple: int) -> tuple[int, ...]:
    return tuple(round_rank(fraction * full, full, multiple) for full in max_rank(layer, method))


def ranks_for_fixed(layer: nn.Module, method: str, rank: int) -> tuple[int, ...]:
    return tuple(min(rank, full) for full in max_rank(layer, method))


def ranks_for_energy(layer: nn.Module, method: str, energy: float, multiple: int) -> tuple[int, ...]:
    """Smallest rank(s) keeping ``energy`` of the squared singular values (per channel mode for Tucker)."""
    ranks = []
    for values, full in zip(singular_values(layer, method), max_rank(layer, method), strict=True):
        squared = values.to(torch.float64) ** 2
        kept = torch.cumsum(squared, 0) / squared.sum().clamp_min(1e-30)
        needed = int(torch.searchsorted(kept, torch.tensor(energy - 1e-12, dtype=torch.float64)).item()) + 1
        ranks.append(round_rank(needed, full, multiple))
    return tuple(ranks)


class TargetUnreachable(ValueError):
    """Even the smallest candidate of every layer leaves the model above the target."""

    def __init__(self, reachable: float, target: float, metric: str) -> None:
        super().__init__(f"the smallest candidate ranks keep {reachable:.3f} of the model's {metric}, "
                         f"above the target {target:g}")
        self.reachable = reachable
        self.target = target
        self.metric = metric


def greedy_select(layers: list[LayerChoice], *, total: float, target: float, metric: str) -> float:
    """Choose one candidate (or none) per layer so the model's ``metric`` is at most ``target * total``.

    Moves go from a layer's current option to any cheaper candidate; the move with the smallest
    (non-negative) loss increase per unit of cost saved is taken first, ties going to the larger
    saving. Sets ``layer.chosen`` and returns the fraction of ``total`` reached.
    """
    budget = target * total
    current = total
    for layer in layers:
        layer.chosen = None
    while current > budget + 1e-9:
        best: tuple[float, float, LayerChoice, Candidate] | None = None
        for layer in layers:
            here_value = layer.value(metric)
            here_loss = layer.chosen.delta_loss if layer.chosen else 0.0
            for cand in layer.candidates:
                saving = here_value - cand.value(metric)
                if saving <= 0:
                    continue
                extra = max(0.0, (cand.delta_loss or 0.0) - (here_loss or 0.0))
                score = extra / saving
                if best is None or score < best[0] - 1e-15 or (abs(score - best[0]) <= 1e-15 and saving > best[1]):
                    best = (score, saving, layer, cand)
        if best is None:
            raise TargetUnreachable(current / total, target, metric)
        _, saving, layer, cand = best
        layer.chosen = cand
        current -= saving
    return _give_back(layers, current, budget, metric) / total


def _give_back(layers: list[LayerChoice], current: float, budget: float, metric: str) -> float:
    """Greedy steps are coarse and can overshoot the budget; spend the slack on the moves back (to a
    larger rank, or to the original layer) that remove the most loss while staying within budget."""
    while True:
        best: tuple[float, float, LayerChoice, Candidate | None] | None = None
        for layer in layers:
            if layer.chosen is None:
                continue
            here_value = layer.value(metric)
            here_loss = layer.chosen.delta_loss or 0.0
            options: list[tuple[Candidate | None, float, float]] = [(None, layer.original_value(metric), 0.0)]
            options += [(c, c.value(metric), c.delta_loss or 0.0) for c in layer.candidates if c is not layer.chosen]
            for cand, value, loss in options:
                extra_cost = value - here_value
                gain = here_loss - loss
                if extra_cost > 0 and gain > 0 and current + extra_cost <= budget + 1e-9 and (
                        best is None or gain > best[0]):
                    best = (gain, extra_cost, layer, cand)
        if best is None:
            return current
        _, extra_cost, layer, cand = best
        layer.chosen = cand
        current += extra_cost
