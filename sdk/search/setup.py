"""What a search works with, fixed before its first trial: the plan, its space per target (every value
probed by compiling it), and the run state every trial shares (model loader, datasets, memos).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecraft.compile.checks import RunInputs, compile_all, prepare
from edgecraft.compile.compiler import find_target
from edgecraft.errors import InputError
from edgecraft.plan import CompressionPlan
from edgecraft.plan.loading import _read, load_plan, validate_plan
from edgecraft.plan.search import SearchSpec
from edgecraft.registry import Registry
from edgecraft.search.space import Dimension, absolutize, for_target, probe_target, resolve_space
from edgecraft.verify.judging import kind_of

if TYPE_CHECKING:
    from edgecraft.assembly.builder import TorchStageDone


@dataclass
class SearchSetup:
    """Everything fixed for a search: the plan, its space per target, the shared run state."""

    plan: CompressionPlan
    plan_path: Path
    base_dir: Path
    spec: SearchSpec
    registry: Registry
    raw: dict[str, Any]  # the plan file's own dict, relative paths made absolute, no `search`
    labels: list[str]
    dims: dict[str, list[Dimension]]
    notes: list[str]
    run: RunInputs  # loader and datasets shared by every trial; torch_memo shared across trials and targets
    user_space: bool
    #: Per target, the names its verdicts carry, in the plan's order (the constraints' order in every trial).
    contract_names: dict[str, list[str]] = field(default_factory=dict)


def setup_search(plan_path: Path, registry: Registry, *, targets: list[str] | None = None,
                 trials: int | None = None, time_budget_s: float | None = None, probe: bool = True) -> SearchSetup:
    """Load the plan, resolve and check the space for every target (exit 2 on any problem), before any trial.

    ``probe=False`` skips compiling every value (a trial's child process: the parent has checked them)."""
    plan, base_dir = load_plan(plan_path, registry)
    spec = plan.search or SearchSpec()
    if trials is not None:
        spec = spec.model_copy(update={"trials": trials})
    if time_budget_s is not None:
        spec = spec.model_copy(update={"time_budget_s": time_budget_s})
    if not plan.steps:
        raise InputError(f"{plan_path}: the plan has no steps: there is no recipe to search",
                         hint="add the steps to explore (e.g. pruning and quantization) with their usual params")
    labels = targets or [t.label for t in plan.targets]
    raw = _read(Path(plan_path))
    assert isinstance(raw, dict)
    raw = absolutize({k: v for k, v in raw.items() if k != "search"}, base_dir)
    dims = resolve_space(plan, registry, source=str(plan_path))
    run = prepare(validate_plan(for_target(raw, labels[0]) if labels else raw, registry, source=str(plan_path)),
                  registry, base_dir)
    per_target: dict[str, list[Dimension]] = {}
    notes: list[str] = []
    for label in labels:
        find_target(plan, label)  # an unknown --target is exit 2 naming the plan's targets
        raw_t = for_target(raw, label)
        if not probe:
            per_target[label] = list(dims)
            continue

        def compile_fn(candidate: dict[str, Any], label: str = label) -> None:
            trial_plan = validate_plan(candidate, registry, source=f"{plan_path} ({label})")
            compile_all(run_inputs(run, trial_plan), [label])

        compile_fn(raw_t)  # the plan itself must compile before its variants are probed
        per_target[label], target_notes = probe_target(raw_t, dims, label, compile_fn,
                                                       user_space=bool(plan.search and plan.search.space),
                                                       source=str(plan_path))
        notes += target_notes
    names = {label: [kind_of(registry, c).describe(c) for c in plan.contracts_for(label)] for label in labels}
    return SearchSetup(plan, Path(plan_path), base_dir, spec, registry, raw, labels, per_target, notes, run,
                       bool(plan.search and plan.search.space), names)


def run_inputs(shared: RunInputs, plan: CompressionPlan, hook: TorchStageDone | None = None) -> RunInputs:
    """A trial's run inputs: its own plan, and everything the trials share (model, data, memos)."""
    if shared.baseline_memo is None:
        shared.baseline_memo = {}
    return RunInputs(plan, shared.registry, shared.base_dir, shared.loader, shared.datasets,
                     torch_memo=shared.torch_memo, torch_stage_done=hook, baseline_memo=shared.baseline_memo)

