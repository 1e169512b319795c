"""Factorize a torch model: find the layers, pick ranks, replace them. Pure torch; no edgecraft run needed.

:func:`factorize_model` is what the strategy's ``apply`` calls and what the tests and the benchmark
call directly. It never modifies the module it is given (it works on a deep copy).
"""

from __future__ import annotations

import copy
import fnmatch
from dataclasses import dataclass, field
from typing import Any

import torch
from edgecraft.plugins.factorization.cost import LayerCost, input_shapes, layer_cost, model_cost
from edgecraft.plugins.factorization.decompose import FactorizedLayer, factorize, max_rank
from edgecraft.plugins.factorization.latency import LayerTimer
from edgecraft.plugins.factorization.selection import (
    Candidate,
    LayerChoice,
    default_method,
    greedy_select,
    ranks_for_energy,
    ranks_for_fixed,
    ranks_for_fraction,
    round_rank,
)
from edgecraft.plugins.factorization.sequential import WHITENINGS, sequential_whitening
from edgecraft.plugins.factorization.whiten import (
    WhitenedBasis,
    activation_aware_linear,
    energy_rank,
    input_moments,
    whitened_basis,
)
from edgecraft.torchkit.data import TorchData
from edgecraft.torchkit.evaluation import predict
from torch import nn

DEFAULT_CANDIDATES = (0.125, 0.25, 0.375, 0.5, 0.625, 0.75)


@dataclass(frozen=True)
class FactorizationConfig:
    """What to factorize and how to choose ranks (the strategy's params, minus recovery)."""

    conv_method: str = "auto"
    selection: str = "energy"
    energy: float = 0.9
    ratio: float = 0.5
    rank: int | None = None
    target: float | None = None
    cost: str = "params"
    multiple: int = 8
    candidates: tuple[float, ...] = DEFAULT_CANDIDATES
    latency: str = "none"
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    threads: int = 2
    #: Linear layers: 'svd' (truncate W) or 'activation_aware' (truncate W·S, S from the inputs' second
    #: moment on calibration data; see :mod:`.whiten`).
    linear_method: str = "svd"
    calibration_samples: int = 128
    #: activation_aware: 'one_shot' (every layer's statistics from the original model) or, once the ranks are
    #: chosen, 'sequential' / 'sequential_refit' (layer by layer in forward order; see :mod:`.sequential`).
    whitening: str = "one_shot"


@dataclass
class FactorizationResult:
    module: nn.Module
    layers: list[LayerChoice]
    skipped: dict[str, str]
    before: LayerCost
    after: LayerCost
    loss_before: float | None = None
    loss_after: float | None = None
    #: With sequential whitening: the loss of the one-shot factors at the same ranks, before the refit.
    loss_one_shot: float | None = None
    reached: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def factorized(self) -> list[LayerChoice]:
        return [layer for layer in self.layers if layer.chosen is not None]

    def summary(self) -> dict[str, Any]:
        """JSON-friendly facts for the step report."""
        rows = []
        for layer in self.layers:
            row: dict[str, Any] = {"layer": layer.name, "method": layer.method,
                                   "params_before": layer.original.params, "macs_before": layer.original.macs}
            if layer.chosen is None:
                row["left_alone"] = layer.reason
            else:
                row.update(ranks=list(layer.chosen.ranks), params_after=layer.chosen.cost.params,
                           macs_after=layer.chosen.cost.macs)
                if layer.chosen.delta_loss is not None:
                    row["sensitivity_delta_loss"] = round(layer.chosen.delta_loss, 6)
            if layer.original_latency is not None:
                row["latency_us_before"] = round(layer.original_latency * 1e6, 2)
                if layer.chosen is not None and layer.chosen.latency is not None:
                    row["latency_us_after"] = round(layer.chosen.latency * 1e6, 2)
            rows.append(row)
        out: dict[str, Any] = {
            "layers": rows,
            "skipped": self.skipped,
            "factorized_layers": len(self.factorized),
            "params_before": self.before.params, "params_after": self.after.params,
            "params_ratio": self.after.params / max(1, self.before.params),
            "macs_before": self.before.macs, "macs_after": self.after.macs,
            "macs_ratio": self.after.macs / max(1, self.before.macs),
        }
        if self.loss_before is not None:
            out.update(eval_loss_before=self.loss_before, eval_loss_after=self.loss_after)
        if self.loss_one_shot is not None:
            out["eval_loss_one_shot"] = self.loss_one_shot
        if self.reached is not None:
            out["target_reached"] = self.reached
        if self.notes:
            out["notes"] = self.notes
        return out


# ---------------------------------------------------------------- evaluation loss
class LossMeter:
    """Loss of a model on fixed evaluation data: cross-entropy when labels fit the outputs, else the
    mean squared error to the original model's outputs (relative to their variance). Reads output
    ``output`` of the model."""

    def __init__(self, original: nn.Module, data: TorchData, batch_size: int = 256, output: int = 0) -> None:
        self.data = data
        self.batch_size = batch_size
        self.output = output
        self.labels = data.labels
        self.reference = self._outputs(original)
        labels = self.labels
        self.use_labels = (labels is not None and self.reference.dim() == 2
                           and int(labels.max()) < self.reference.shape[1] and int(labels.min()) >= 0)
        self.scale = float(self.reference.var().clamp_min(1e-12))

    def _outputs(self, model: nn.Module) -> torch.Tensor:
        return predict(model, self.data, output=self.output, batch_size=self.batch_size)

    def __call__(self, model: nn.Module) -> float:
        outputs = self._outputs(model)
        if self.use_labels:
            assert self.labels is not None
            return float(nn.functional.cross_entropy(outputs, self.labels))
        return float(((outputs - self.reference) ** 2).mean() / self.scale)

    def accuracy(self, model: nn.Module) -> float | None:
        if not self.use_labels:
            return None
        assert self.labels is not None
        return float((self._outputs(model).argmax(1) == self.labels).float().mean())


# ---------------------------------------------------------------- layer discovery
def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def find_layers(model: nn.Module, config: FactorizationConfig) -> tuple[list[tuple[str, nn.Module, str]],
                                                                         dict[str, str]]:
    """(name, layer, method) of every factorizable layer selected by include/exclude, and why others were skipped."""
    found: list[tuple[str, nn.Module, str]] = []
    skipped: dict[str, str] = {}
    inside_factorized: list[str] = []
    for name, module in model.named_modules():
        if isinstance(module, FactorizedLayer):
            inside_factorized.append(name + ".")
            continue
        if not isinstance(module, nn.Linear | nn.Conv2d):
            continue
        if any(name.startswith(prefix) for prefix in inside_factorized):
            continue
        if not _matches(name, config.include) or _matches(name, config.exclude):
            continue
        method = default_method(module, config.conv_method)
        if method == "svd" and isinstance(module, nn.Linear) and config.linear_method == "activation_aware":
            method = "activation_aware"
        if method is None:
            skipped[name] = "grouped/depthwise convolution or string padding: nothing to factorize"
            continue
        found.append((name, module, method))
    return found, skipped


# ---------------------------------------------------------------- the pipeline
def _candidate_ranks(layer: nn.Module, method: str, config: FactorizationConfig,
                     basis: WhitenedBasis | None = None) -> list[tuple[float | None, tuple[int, ...]]]:
    if config.selection == "energy":
        if basis is not None:  # the energy of the layer's outputs on calibration data, not of its weights
            full = max_rank(layer, method)[0]
            return [(None, (round_rank(energy_rank(basis, config.energy), full, config.multiple),))]
        return [(None, ranks_for_energy(layer, method, config.energy, config.multiple))]
    if config.selection == "ratio":
        return [(config.ratio, ranks_for_fraction(layer, method, config.ratio, config.multiple))]
    if config.selection == "rank":
        assert config.rank is not None
        return [(None, ranks_for_fixed(layer, method, config.rank))]
    seen: dict[tuple[int, ...], float] = {}
    for fraction in sorted(config.candidates):
        seen.setdefault(ranks_for_fraction(layer, method, fraction, config.multiple), fraction)
    return [(fraction, ranks) for ranks, fraction in seen.items()]


def factorize_model(module: nn.Module, example: torch.Tensor | list[torch.Tensor], config: FactorizationConfig,
                    data: TorchData | None = None, *, output: int = 0,
                    calibration: TorchData | None = None) -> FactorizationResult:
    """Return a factorized deep copy of ``module`` and what was done to each layer.

    ``example`` is the model's batch-1 inputs (``TorchModel.example_inputs(1)``; one tensor for a
    single-input model), for shapes and MACs. ``data`` is required for the target selection
    (sensitivity) and otherwise only used to report the loss before and after; the loss reads
    model output ``output``. ``calibration`` (default ``data``) feeds the input statistics of
    ``linear_method: activation_aware``.
    """
    if config.selection == "target" and data is None:
        raise ValueError("target rank selection needs evaluation data for the sensitivity analysis")
    calibration = calibration if calibration is not None else data
    if config.linear_method == "activation_aware" and calibration is None:
        raise ValueError("activation-aware factorization needs calibration data (the Linear layers' inputs)")
    if config.whitening not in WHITENINGS:
        raise ValueError(f"whitening {config.whitening!r} is not one of {', '.join(WHITENINGS)}")
    if config.whitening != "one_shot" and config.linear_method != "activation_aware":
        raise ValueError(f"whitening {config.whitening!r} refits activation-aware factors: it needs "
                         "linear_method 'activation_aware'")
    metric = config.cost
    model = copy.deepcopy(module).eval()
    before = model_cost(model, example)
    found, skipped = find_layers(model, config)
    shapes = input_shapes(model, example, [name for name, _, _ in found])

    bases: dict[str, WhitenedBasis] = {}
    whitened = [name for name, _, method in found if method == "activation_aware" and name in shapes]
    if whitened:
        assert calibration is not None
        moments = input_moments(model, calibration, whitened, samples=config.calibration_samples)
        for name in whitened:
            linear = model.get_submodule(name)
            if name in moments and isinstance(linear, nn.Linear):  # find_layers whitens Linear layers only
                bases[name] = whitened_basis(linear, *moments[name])

    layers: list[LayerChoice] = []
    modules: dict[tuple[str, tuple[int, ...]], FactorizedLayer] = {}
    for name, layer, method in found:
        if name not in shapes:
            skipped[name] = "not called in the forward pass"
            continue
        if method == "activation_aware" and name not in bases:
            method = "svd"  # not reached by the calibration data: nothing to whiten with
        in_shape = shapes[name]
        choice = LayerChoice(name=name, kind=type(layer).__name__, method=method, in_shape=in_shape,
                             original=layer_cost(layer, in_shape))
        for fraction, ranks in _candidate_ranks(layer, method, config, bases.get(name)):
            replacement = (activation_aware_linear(layer, ranks[0], bases[name])
                           if method == "activation_aware" and isinstance(layer, nn.Linear)
                           else factorize(layer, method, ranks))
            modules[(name, ranks)] = replacement
            choice.candidates.append(Candidate(ranks=ranks, cost=layer_cost(replacement, in_shape),
                                               fraction=fraction))
        layers.append(choice)

    # Static filter: a candidate must lower the layer's params or MACs (whichever is the cost; for a
    # latency cost, the MACs, before timing decides).
    static_metric = "macs" if metric == "latency" else metric
    for choice in layers:
        kept = [c for c in choice.candidates if c.value(static_metric) < choice.original_value(static_metric)]
        if not kept:
            best = min(choice.candidates, key=lambda c: c.value(static_metric))
            choice.reason = (f"factorizing would not lower its {static_metric} (best candidate ranks "
                             f"{list(best.ranks)}: {best.value(static_metric):.0f} vs "
                             f"{choice.original_value(static_metric):.0f})")
        choice.candidates = kept

    if config.latency != "none":
        with LayerTimer(config.latency, threads=config.threads) as timer:
            for choice in layers:
                original = model.get_submodule(choice.name)
                reference, timings = timer.compare(
                    original, [modules[(choice.name, c.ranks)] for c in choice.candidates], choice.in_shape)
                choice.original_latency = reference
                for cand, seconds in zip(choice.candidates, timings, strict=True):
                    cand.latency = seconds
                faster = [c for c in choice.candidates if c.latency is not None and c.latency < reference]
                if choice.candidates and not faster:
                    choice.reason = (f"every candidate was slower on {config.latency} than the original layer "
                                     f"({reference * 1e6:.1f} us)")
                choice.candidates = faster

    meter = LossMeter(model, data, output=output) if data is not None else None
    loss_before = meter(model) if meter else None
    result = FactorizationResult(module=model, layers=layers, skipped=skipped, before=before, after=before,
                                 loss_before=loss_before)

    if config.selection == "target":
        assert meter is not None and loss_before is not None and config.target is not None
        for choice in layers:
            original = model.get_submodule(choice.name)
            for cand in choice.candidates:
                model.set_submodule(choice.name, modules[(choice.name, cand.ranks)])
                cand.delta_loss = meter(model) - loss_before
            model.set_submodule(choice.name, original)
        if metric == "latency":
            total = sum(c.original_value("latency") for c in layers)
            result.notes.append("latency target: a fraction of the summed latency of the factorizable layers, "
                                "each timed alone")
        else:
            total = float(before.params if metric == "params" else before.macs)
        result.reached = greedy_select(layers, total=total, target=config.target, metric=metric)
        for choice in layers:
            if choice.chosen is None and not choice.reason:
                choice.reason = "not needed to meet the target (or too sensitive)"
    else:
        for choice in layers:
            choice.chosen = choice.candidates[0] if choice.candidates else None

    for choice in layers:
        if choice.chosen is not None:
            model.set_submodule(choice.name, modules[(choice.name, choice.chosen.ranks)])
    if config.whitening != "one_shot":
        assert calibration is not None
        ranks = {c.name: c.chosen.ranks[0] for c in layers if c.chosen is not None and c.method == "activation_aware"}
        if meter is not None:
            result.loss_one_shot = meter(model)
        refitted = sequential_whitening(module, model, ranks, calibration.take(config.calibration_samples),
                                        refit=config.whitening == "sequential_refit")
        result.notes.append(f"{config.whitening} whitening: {len(refitted)} of {len(ranks)} factorized Linears "
                            "refitted in forward order on the inputs of the factorized layers before them")
    result.after = model_cost(model, example)
    if meter is not None:
        result.loss_after = meter(model)
    return result
