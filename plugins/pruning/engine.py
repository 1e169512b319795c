"""The two pruning procedures, as functions on a plain ``nn.Module`` (the strategy, tests and the
benchmark all call these): :func:`prune_structured` and :func:`prune_unstructured`.

Both mutate the module in place and return a JSON-able dict of what happened. Layer names are
checked first (:func:`check_layers`), and for structured pruning every group's channel target is
computed before anything is removed, so a bad ratio fails before the model is touched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgecraft.errors import InputError
from edgecraft.plugins.pruning import layers as layer_names
from edgecraft.plugins.pruning import structured as st
from edgecraft.plugins.pruning import unstructured as un
from edgecraft.plugins.pruning.params import PruningParams
from edgecraft.progress import NullProgress, Progress

if TYPE_CHECKING:
    import torch
    from edgecraft.torchkit.data import TorchData
    from edgecraft.torchkit.objectives import Objective


@dataclass
class FineTuning:
    """Training data and loop settings for recovery (and gradients for Taylor importance)."""

    data: TorchData
    objective: Objective
    #: 'cross_entropy' (labels) or 'mse_to_unpruned' (imitate the unpruned model), for the report.
    kind: str
    epochs: int
    lr: float
    batch_size: int
    seed: int = 0
    progress: Progress | None = None


def make_finetuning(data: TorchData, teacher: Callable[[], torch.nn.Module] | None, *, epochs: int, lr: float,
                    batch_size: int, seed: int = 0, progress: Progress | None = None, output: int = 0,
                    where: str = "pruning") -> FineTuning:
    """Cross-entropy with labels; without, MSE to the unpruned model's outputs (recovery needs no
    labels, only the model it was cut from)."""
    from edgecraft import torchkit

    if data.labeled:
        return FineTuning(data, torchkit.CrossEntropy(output), "cross_entropy", epochs, lr, batch_size, seed, progress)
    if teacher is None:
        raise InputError(f"step {where}: params.dataset {data.name!r} has no labels and no unpruned model is "
                         "available to imitate", hint="use a labeled dataset")
    objective = torchkit.TeacherMatch(torchkit.Teacher(teacher().eval(), output=output, cache=False), kind="mse",
                                      output=output)
    return FineTuning(data, objective, "mse_to_unpruned", epochs, lr, batch_size, seed, progress)


def _finetune_round(model: torch.nn.Module, finetuning: FineTuning | None, round_index: int, *, where: str,
                    progress: Progress | None) -> float | None:
    """Recover after one pruning round (both modes); None when the plan asks for no fine-tuning.

    Returns the mean loss of the last epoch. BatchNorm trains (the statistics follow the pruned
    channels); see :mod:`edgecraft.torchkit.training`.
    """
    from edgecraft import torchkit

    if finetuning is None or finetuning.epochs == 0:
        return None
    config = torchkit.TrainConfig(epochs=finetuning.epochs, lr=finetuning.lr, batch_size=finetuning.batch_size,
                                  seed=finetuning.seed + round_index)
    result = torchkit.train(model, finetuning.data, finetuning.objective, config, progress=progress,
                            label=f"{where} fine-tune round {round_index + 1}")
    return result.final_loss


@dataclass
class LayerChoice:
    ignored: list[str]
    overrides: dict[str, float]


def check_layers(model: torch.nn.Module, params: PruningParams, *, where: str) -> LayerChoice:
    """Resolve ``ignored_layers`` and ``layer_ratios`` names; errors name the step and the entry."""
    ignored_map = layer_names.resolve_names(model, params.ignored_layers, field="ignored_layers", where=where)
    ignored = sorted({n for hits in ignored_map.values() for n in hits})
    prunable = layer_names.prunable_layer_names(model)
    ratio_map = layer_names.resolve_names(model, list(params.layer_ratios), field="layer_ratios", where=where,
                                          candidates=prunable)
    overrides: dict[str, float] = {}
    for pattern, hits in ratio_map.items():
        clash = sorted(set(hits) & set(ignored))
        if clash:
            raise InputError(f"step {where}: params.layer_ratios[{pattern!r}] names layer(s) {clash} that "
                             "params.ignored_layers excludes", hint="remove one of the two entries")
        for name in hits:
            overrides[name] = params.layer_ratios[pattern]
    return LayerChoice(ignored, overrides)


# ---------------------------------------------------------------- structured
def _structured_view(model: torch.nn.Module, example: list[torch.Tensor], choice: LayerChoice,
                     where: str) -> st.GraphView:
    view = st.analyse(model, example, choice.ignored)
    prunable = {m for g in view.groups for m in g.members}
    for name in choice.overrides:
        if name not in prunable:
            why = ("it produces the model's output (its channels are the output's shape)"
                   if name in view.output_layers else "its channels are coupled to an ignored layer")
            raise InputError(f"step {where}: params.layer_ratios names layer {name!r}, which cannot be pruned: {why}",
                             hint="remove it from params.layer_ratios")
    return view


def plan_structured(model: torch.nn.Module, example: torch.Tensor | list[torch.Tensor], params: PruningParams, *,
                    where: str) -> dict[str, int]:
    """Check every group's target without pruning (uniform and per-layer ratios; global needs scores)."""
    example = _inputs(example)
    choice = check_layers(model, params, where=where)
    view = _structured_view(model, example, choice, where)
    original = {g.root: g.channels for g in view.groups}
    alloc = st.allocate(view, original=original, ratio=params.ratio or 0.0, scope=params.scope,
                        overrides=choice.overrides, round_to=params.round_to,
                        max_layer_ratio=params.max_layer_ratio, where=where, dry_run=True)
    return alloc.keep


def _structured_schedule(params: PruningParams) -> list[float]:
    """Fraction of the final ratios reached after each round (Torch-Pruning's linear schedule)."""
    if params.schedule == "one_shot":
        return [1.0]
    n = params.iterations
    return [(i + 1) / n for i in range(n)]


def _inputs(example: torch.Tensor | list[torch.Tensor]) -> list[torch.Tensor]:
    """A single-input model's example may be given as one tensor."""
    return list(example) if isinstance(example, list | tuple) else [example]


def _output_shapes(model: torch.nn.Module, example: list[torch.Tensor]) -> list[tuple[int, ...]]:
    import torch
    from edgecraft.torchkit.data import outputs_of

    model.eval()
    with torch.no_grad():
        return [tuple(o.shape) for o in outputs_of(model(*example))]


def prune_structured(model: torch.nn.Module, example: torch.Tensor | list[torch.Tensor], params: PruningParams, *,
                     where: str, finetuning: FineTuning | None = None) -> dict[str, Any]:
    """Remove channels (one-shot or in rounds with fine-tuning); returns what happened.

    ``example`` is the model's inputs in call order (``TorchModel.example_inputs``), for tracing.
    """
    from edgecraft import torchkit

    example = _inputs(example)
    progress = (finetuning.progress if finetuning else None) or NullProgress()
    plan_structured(model, example, params, where=where)  # the final targets, before anything is removed
    choice = check_layers(model, params, where=where)
    reference_shape = _output_shapes(model, example)
    widths_before = st.widths(model)
    importance = st.make_importance(params.importance)
    fallback = st.make_importance("l1")
    original: dict[str, int] = {}
    rounds: list[dict[str, Any]] = []
    fell_back: set[str] = set()
    output_layers: list[str] = []
    for round_index, fraction in enumerate(_structured_schedule(params)):
        ratio = (params.ratio or 0.0) * fraction
        overrides = {n: r * fraction for n, r in choice.overrides.items()}
        view = _structured_view(model, example, choice, where)
        output_layers = view.output_layers
        if not original:
            original = {g.root: g.channels for g in view.groups}
            if not view.groups:
                raise InputError(f"step {where}: the model has no prunable channel group (every conv/linear is "
                                 "ignored or produces the output)", hint="check params.ignored_layers")
        # Dry run first: a ratio that empties a layer fails before anything is removed.
        st.allocate(view, original=original, ratio=ratio, scope=params.scope, overrides=overrides,
                    round_to=params.round_to, max_layer_ratio=params.max_layer_ratio, where=where, dry_run=True)
        if params.importance == "taylor":
            assert finetuning is not None, "taylor importance needs training data"
            torchkit.accumulate_gradients(model, finetuning.data, finetuning.objective,
                                          batches=params.taylor_batches, batch_size=finetuning.batch_size,
                                          seed=finetuning.seed + round_index)
        scores, fb = st.group_scores(view, importance, fallback, where=where)
        fell_back.update(fb)
        alloc = st.allocate(view, original=original, ratio=ratio, scope=params.scope, overrides=overrides,
                            round_to=params.round_to, max_layer_ratio=params.max_layer_ratio, where=where,
                            scores=scores)
        st.prune_groups(view, alloc.keep, scores, where=where)
        model.zero_grad(set_to_none=True)
        loss = _finetune_round(model, finetuning, round_index, where=where, progress=progress)
        rounds.append({"ratio": round(ratio, 6), "channels_kept": sum(alloc.keep.values()),
                       "finetune_loss": loss})
    shape = _output_shapes(model, example)
    if shape != reference_shape:  # guarded by the output-layer detection; never ship a changed interface
        raise InputError(f"step {where}: pruning changed the output shape from {list(reference_shape)} to "
                         f"{list(shape)}", hint="add the output layers to params.ignored_layers")
    widths_after = st.widths(model)
    changed = {n: [widths_before[n], widths_after[n]] for n in widths_before if widths_before[n] != widths_after[n]}
    total_before = sum(original.values())
    total_after = sum(widths_after[root] for root in original)
    return {
        "channels_before": total_before, "channels_after": total_after,
        "channel_ratio_removed": round(1 - total_after / total_before, 6),
        "layers": changed, "rounds": rounds, "kept_whole_for_output": output_layers,
        "ignored_layers": choice.ignored,
        "importance_fallback_l1": sorted(fell_back),
    }


# ---------------------------------------------------------------- unstructured
def unstructured_layers(model: torch.nn.Module, params: PruningParams, *, where: str
                        ) -> tuple[list[tuple[str, torch.nn.Module]], LayerChoice]:
    choice = check_layers(model, params, where=where)
    layers = un.weight_layers(model, set(choice.ignored))
    if not layers:
        raise InputError(f"step {where}: no conv/linear layer is left to prune", hint="check params.ignored_layers")
    return layers, choice


def prune_unstructured(model: torch.nn.Module, params: PruningParams, *, where: str,
                       finetuning: FineTuning | None = None) -> dict[str, Any]:
    """Zero weights by magnitude (global/uniform/per-layer or N:M; one-shot or gradual) and fine-tune."""
    from edgecraft.plugins.pruning import accounting

    progress = (finetuning.progress if finetuning else None) or NullProgress()
    layers, choice = unstructured_layers(model, params, where=where)
    pattern = un.parse_pattern(params.pattern) if params.pattern else None
    if pattern is not None:
        for name, module in layers:
            un.check_nm_layer(name, module, pattern, where=where)
        schedule = [pattern.sparsity]
    else:
        final = params.ratio or 0.0
        schedule = un.cubic_schedule(final, params.iterations) if params.schedule == "gradual" else [final]
    rounds: list[dict[str, Any]] = []
    for round_index, sparsity in enumerate(schedule):
        if pattern is not None:
            un.apply_nm(layers, pattern, where=where)
        else:
            overrides = {n: min(r, sparsity / schedule[-1] * r) if schedule[-1] else r
                         for n, r in choice.overrides.items()}
            un.prune_to(layers, sparsity, scope=params.scope, overrides=overrides, where=where)
        loss = _finetune_round(model, finetuning, round_index, where=where, progress=progress)
        rounds.append({"sparsity_target": round(sparsity, 6), "finetune_loss": loss})
    masked = sum(un.masked_count(m) for _, m in layers)
    total = sum(m.weight.numel() for _, m in layers)
    un.make_permanent(layers)
    measured = accounting.weight_sparsity(model, [n for n, _ in layers])
    return {
        "sparsity_target": schedule[-1] if not choice.overrides or params.scope == "global" else None,
        "sparsity_reached": masked / total, "zeros": masked, "pruned_weights": total,
        "zeros_measured": measured["zeros"], "per_layer_sparsity": measured["per_layer"],
        "pattern": str(pattern) if pattern else None, "rounds": rounds, "ignored_layers": choice.ignored,
    }
