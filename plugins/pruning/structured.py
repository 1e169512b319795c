"""Structured (channel) pruning on Torch-Pruning's dependency graph.

Torch-Pruning (``torch_pruning``) traces the model and groups every layer whose channels are coupled
(a conv, its BatchNorm, the convs reading it, the other branch of a residual add, the slice of a
concat, the Linear after a flatten, depthwise and grouped convs). edgecraft uses its graph, its
importance criteria and its group pruning functions as they are.

What edgecraft does itself is the *allocation* (how many channels each group keeps), instead of
``tp.pruner.BasePruner.step()``. The reason: BasePruner silently skips a group when its plan would
remove every channel (``check_pruning_group``), which happens with ``round_to`` on a group that holds a
grouped conv (it rounds per group unit and ends up selecting them all) and with a global threshold
that falls above a whole layer. The user then gets a model that is not smaller, with no error; the
most common complaint about pruning tools. Here every group's target is computed up front, a target
of zero channels is an ``InputError`` naming the step and the layer, and the achieved counts are
reported.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edgecraft.errors import InputError, PluginError
from edgecraft.plugins.pruning import layers as layer_names

if TYPE_CHECKING:
    import torch
    import torch_pruning as tp


@dataclass
class GroupInfo:
    """One prunable channel group: the layers whose output channels are coupled."""

    root: str
    members: list[str]
    channels: int
    #: Channels move in blocks of this size (grouped convs: one block per conv group).
    ch_groups: int
    group: Any = field(repr=False, default=None)
    root_module: Any = field(repr=False, default=None)
    prune_fn: Any = field(repr=False, default=None)

    @property
    def units(self) -> int:
        return self.channels // self.ch_groups


@dataclass
class GraphView:
    """The dependency graph of a model, its prunable groups and the groups kept for the output."""

    graph: tp.DependencyGraph
    groups: list[GroupInfo]
    output_layers: list[str]
    names: dict[Any, str]


def _conv_types() -> tuple[type, ...]:
    import torch

    return (torch.nn.modules.conv._ConvNd,)


def _channel_groups(dg: tp.DependencyGraph, group: Any) -> int:
    """Channel blocks of a group, as Torch-Pruning's BasePruner computes them (depthwise convs excluded)."""
    counts = [1]
    for dep, _ in group:
        module = dep.target.module
        if isinstance(module, _conv_types()) and module.groups == module.out_channels:
            continue
        pruner = dg.get_pruner_of_module(module)
        if pruner is None:
            continue
        if dg.is_out_channel_pruning_fn(dep.handler):
            counts.append(int(pruner.get_out_channel_groups(module)))
        elif dg.is_in_channel_pruning_fn(dep.handler):
            counts.append(int(pruner.get_in_channel_groups(module)))
    return max(counts)


def analyse(model: torch.nn.Module, example: list[torch.Tensor], ignored: list[str]) -> GraphView:
    """Trace ``model`` on ``example`` (its inputs in call order; Torch-Pruning calls ``model(*example)``)
    and list its prunable groups, leaving out ignored layers and output layers."""
    import torch
    import torch_pruning as tp

    names = {m: n for n, m in model.named_modules()}
    ignored_modules = [model.get_submodule(n) for n in ignored]
    try:
        dg = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    except Exception as exc:
        raise PluginError(f"Torch-Pruning could not trace the model: {type(exc).__name__}: {exc}") from exc
    sinks = {node for node in dg.module2node.values() if not node.outputs}
    groups: list[GroupInfo] = []
    output_layers: set[str] = set()
    roots = (torch.nn.modules.conv._ConvNd, torch.nn.Linear)
    for group in dg.get_all_groups(ignored_layers=ignored_modules, root_module_types=roots):
        root_module = group[0].dep.target.module
        members = [names[dep.target.module] for dep, _ in group
                   if dg.is_out_channel_pruning_fn(dep.handler) and dep.target.module in names]
        if any(dep.target in sinks and dg.is_out_channel_pruning_fn(dep.handler) for dep, _ in group):
            output_layers.update(members)  # pruning these would change the model's output shape
            continue
        groups.append(GroupInfo(root=names[root_module], members=members,
                                channels=int(dg.get_out_channels(root_module)),
                                ch_groups=_channel_groups(dg, group), group=group, root_module=root_module,
                                prune_fn=group[0].dep.handler))
    return GraphView(dg, groups, sorted(output_layers), names)


# ---------------------------------------------------------------- allocation
def _unit_step(ch_groups: int, round_to: int | None) -> int:
    """Kept units must be a multiple of this so that kept channels are a multiple of ``round_to``."""
    if not round_to:
        return 1
    return round_to // math.gcd(round_to, ch_groups)


def _floor(x: float) -> int:
    return math.floor(round(x, 9))


def uniform_keep(info: GroupInfo, original_channels: int, ratio: float, round_to: int | None, *,
                 where: str, source: str) -> int:
    """Channels ``info`` keeps at ``ratio`` of its original width (Torch-Pruning's int() semantics)."""
    if ratio <= 0:
        return info.channels
    keep_units = _floor(original_channels * (1 - ratio)) // info.ch_groups
    step = _unit_step(info.ch_groups, round_to)
    keep_units -= keep_units % step
    if keep_units <= 0:
        layer_list = ", ".join(repr(m) for m in info.members)
        smallest = step * info.ch_groups
        max_ratio = 1 - smallest / original_channels
        rounding = f" rounded down to a multiple of round_to={round_to}" if round_to else ""
        raise InputError(
            f"step {where}: {source} = {ratio:g} would remove every output channel of layer {info.root!r} "
            f"({original_channels} channels{rounding}; coupled layers: {layer_list})",
            hint=(f"use a ratio <= {max_ratio:.4g} for this layer" if max_ratio > 0 else
                  "this layer cannot be pruned with these settings") +
            f", or add {info.root!r} to params.ignored_layers")
    return keep_units * info.ch_groups


def _ratio_for(info: GroupInfo, overrides: dict[str, float], *, where: str) -> tuple[float, str] | None:
    """The per-layer override of a group (members share channels, so they must agree)."""
    found: dict[str, tuple[float, str]] = {}
    for pattern, ratio in overrides.items():
        for member in info.members:
            if layer_names.match(pattern, [member]):
                found[member] = (ratio, pattern)
    if not found:
        return None
    values = {r for r, _ in found.values()}
    if len(values) > 1:
        detail = ", ".join(f"{m!r}: {r:g} (from {p!r})" for m, (r, p) in found.items())
        raise InputError(f"step {where}: params.layer_ratios gives different ratios to layers that share their "
                         f"channels through a residual add or concat ({detail})",
                         hint="coupled layers are pruned together; give them one ratio")
    member, (ratio, pattern) = next(iter(found.items()))
    return ratio, f"params.layer_ratios[{pattern!r}]"


@dataclass
class Allocation:
    #: root name -> channels to keep
    keep: dict[str, int]
    #: root name -> where the ratio came from
    source: dict[str, str]


def allocate(view: GraphView, *, original: dict[str, int], ratio: float, scope: str,
             overrides: dict[str, float], round_to: int | None, max_layer_ratio: float, where: str,
             scores: dict[str, torch.Tensor] | None = None, dry_run: bool = False) -> Allocation:
    """Channels every group keeps after this round (``ratio`` is relative to the original widths).

    ``dry_run`` checks the uniform and per-layer targets only (global ranking needs ``scores``).
    """
    keep: dict[str, int] = {}
    source: dict[str, str] = {}
    global_groups: list[GroupInfo] = []
    for info in view.groups:
        override = _ratio_for(info, overrides, where=where)
        if override is not None:
            keep[info.root] = uniform_keep(info, original[info.root], override[0], round_to, where=where,
                                           source=override[1])
            source[info.root] = override[1]
        elif scope == "uniform":
            keep[info.root] = uniform_keep(info, original[info.root], ratio, round_to, where=where,
                                           source="params.ratio")
            source[info.root] = "params.ratio"
        else:
            global_groups.append(info)
    if global_groups and not dry_run:
        assert scores is not None, "global allocation needs importance scores"
        keep.update(_allocate_global(global_groups, original, ratio, round_to, max_layer_ratio, scores))
        source.update({g.root: "params.ratio (global ranking)" for g in global_groups})
    return Allocation(keep, source)


def _allocate_global(groups: list[GroupInfo], original: dict[str, int], ratio: float, round_to: int | None,
                     max_layer_ratio: float, scores: dict[str, torch.Tensor]) -> dict[str, int]:
    """Remove the globally least important channel units until ``ratio`` of the original total is gone.

    Scores are Torch-Pruning's group importances with its default 'mean' normalisation, so they are
    comparable across layers. No group drops below ``1 - max_layer_ratio`` of its width (nor below one
    ``round_to`` block), so a layer never disappears.
    """
    target_total = _floor(sum(original[g.root] for g in groups) * (1 - ratio))
    to_remove = sum(g.channels for g in groups) - target_total
    min_units: dict[str, int] = {}
    for g in groups:
        step = _unit_step(g.ch_groups, round_to)
        floor_units = math.ceil(round(original[g.root] * (1 - max_layer_ratio), 9) / g.ch_groups)
        min_units[g.root] = max(step, math.ceil(max(floor_units, 1) / step) * step)
    candidates = []
    for g in groups:
        for unit, score in enumerate(scores[g.root].tolist()):
            candidates.append((score, g.root, unit))
    candidates.sort()
    removed_units = {g.root: 0 for g in groups}
    by_root = {g.root: g for g in groups}
    removed = 0
    for _score, root, _unit in candidates:
        if removed >= to_remove:
            break
        g = by_root[root]
        if g.units - removed_units[root] - 1 < min_units[root]:
            continue
        removed_units[root] += 1
        removed += g.ch_groups
    keep: dict[str, int] = {}
    for g in groups:
        step = _unit_step(g.ch_groups, round_to)
        units = g.units - removed_units[g.root]
        units = max(units - units % step, min_units[g.root])
        keep[g.root] = min(units, g.units) * g.ch_groups
    return keep


# ---------------------------------------------------------------- importance
def make_importance(kind: str) -> Callable[[Any], Any]:
    import torch_pruning as tp

    if kind == "l1":
        return tp.importance.MagnitudeImportance(p=1)
    if kind == "l2":
        return tp.importance.MagnitudeImportance(p=2)
    if kind == "bn_scale":
        return tp.importance.BNScaleImportance()
    if kind == "taylor":
        return tp.importance.TaylorImportance()
    raise ValueError(f"unknown importance {kind!r}")


def group_scores(view: GraphView, importance: Callable[[Any], Any], fallback: Callable[[Any], Any], *,
                 where: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Per-unit importance of every group; groups the criterion cannot score use ``fallback``."""
    scores: dict[str, torch.Tensor] = {}
    fell_back: list[str] = []
    for info in view.groups:
        imp = _tp_call(lambda g=info.group: importance(g), info, where)
        if imp is None:  # e.g. bn_scale on a group without BatchNorm
            imp = _tp_call(lambda g=info.group: fallback(g), info, where)
            fell_back.append(info.root)
        imp = imp.detach().float().cpu()
        if info.ch_groups > 1:
            imp = imp.view(info.ch_groups, -1).mean(dim=0)
        scores[info.root] = imp
    return scores, fell_back


def prune_groups(view: GraphView, keep: dict[str, int], scores: dict[str, torch.Tensor], *, where: str) -> None:
    """Remove the least important units of every group down to ``keep`` channels."""
    import torch

    for info in view.groups:
        target = keep[info.root]
        n_units = info.units - target // info.ch_groups
        if n_units <= 0:
            continue
        order = torch.argsort(scores[info.root])[:n_units]
        idxs = sorted(int(i) + b * info.units for b in range(info.ch_groups) for i in order)
        group = view.graph.get_pruning_group(info.root_module, info.prune_fn, idxs)
        if not view.graph.check_pruning_group(group):
            raise InputError(f"step {where}: pruning {len(idxs)} of {info.channels} channels of layer "
                             f"{info.root!r} would leave a coupled layer with no channels",
                             hint=f"lower its ratio or add {info.root!r} to params.ignored_layers")
        _tp_call(group.prune, info, where)


def _tp_call(fn: Callable[[], Any], info: GroupInfo, where: str) -> Any:
    """Run a Torch-Pruning call on one group; its failures become errors that name the layer."""
    try:
        return fn()
    except Exception as exc:
        raise PluginError(
            f"step {where}: Torch-Pruning failed on layer {info.root!r} (coupled: {info.members}): "
            f"{type(exc).__name__}: {exc}",
            hint="a known Torch-Pruning 1.6 limitation is a concat whose spatial map is flattened into a "
                 f"Linear; add {info.root!r} (and the other concat inputs) to params.ignored_layers") from exc


def widths(model: torch.nn.Module) -> dict[str, int]:
    """Output channels/features of every conv and linear layer."""
    import torch

    out: dict[str, int] = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.modules.conv._ConvNd):
            out[name] = int(module.out_channels)
        elif isinstance(module, torch.nn.Linear):
            out[name] = int(module.out_features)
    return out
