"""Every compile-time check of a run, before anything is built: each target compiled, the data bound to
the model's I/O, contracts checked against the evaluation metrics, emulated-latency contracts refused.

A plan that cannot work fails here, in seconds, not after an hour of training; ``edgecraft validate``
runs exactly these checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecraft.compile.compiler import CompiledPlan, compile_plan
from edgecraft.context import TargetView
from edgecraft.datasets import DatasetContext, DatasetStore
from edgecraft.errors import CompileError
from edgecraft.model_source import ModelSourceLoader
from edgecraft.plan import CompressionPlan, RawPlan
from edgecraft.registry import Registry


@dataclass
class RunInputs:
    """Everything shared by the targets of one run."""

    plan: CompressionPlan
    registry: Registry
    base_dir: Path
    loader: ModelSourceLoader
    datasets: DatasetStore
    #: Torch-stage results shared by the targets of this run (see assembly.builder.Builder.torch_memo).
    torch_memo: dict[str, Any] = field(default_factory=dict)
    #: Called when a build's torch-stage steps are done (see assembly.builder.TorchStageDone); None: nothing.
    torch_stage_done: Any = None
    #: Baseline outputs shared across runs (see verify.evaluator.TargetEvaluator.baseline_memo); None: per run.
    baseline_memo: dict[str, Any] | None = None


def prepare(plan: CompressionPlan | RawPlan, registry: Registry, base_dir: Path) -> RunInputs:
    """The model loader and dataset store of a run, each bound to the kind plugin that registered it.

    A plan as written, or built in Python, is bound here (a loaded plan already is): the run holds the bound
    plan."""
    from edgecraft.plan.loading import validate_plan

    plan = validate_plan(plan, registry)
    source_kind = registry.model_source(plan.model.kind)
    loader = ModelSourceLoader(source_kind, plan.model, base_dir)
    kinds = {spec.kind: registry.dataset_kind(spec.kind, where=f"data.{name}.kind")
             for name, spec in plan.data.items()}
    store = DatasetStore(plan.data, kinds, DatasetContext(base_dir, plan.model, loader.io))
    return RunInputs(plan, registry, base_dir, loader, store)


def compile_all(run: RunInputs, labels: list[str]) -> dict[str, CompiledPlan]:
    """Compile every requested target; also check data shapes and emulated-latency contracts."""
    compiled = {label: compile_plan(run.plan, label, run.registry, loader=run.loader, datasets=run.datasets)
                for label in labels}
    io = run.loader.io()
    if run.plan.evaluation.dataset is not None:
        run.datasets.bound(run.plan.evaluation.dataset)  # every input fed, shapes and dtypes checked
        if io.outputs:
            io.output_index(run.plan.evaluation.output)
    for i, contract in enumerate(run.plan.contracts):  # each kind says what the plan must offer to judge it
        run.registry.contract_kind(contract.kind, where=f"contracts[{i}].kind").check_plan(contract, i, run.plan)
    for label, cp in compiled.items():
        emulated = target_view(run.plan, run.registry, cp).emulated
        for contract in run.plan.contracts_for(label):
            run.registry.contract_kind(contract.kind).check_target(contract, label, emulated=emulated)
        _check_memory_measurable(run, label, cp)
        for step in cp.steps:
            for name in step.needs_data:
                run.datasets.get(name)  # loads and validates before anything is built
    return compiled


def _check_memory_measurable(run: RunInputs, label: str, cp: CompiledPlan) -> None:
    """A memory verdict needs the model's memory; a target whose sessions run on another device cannot give it here."""
    plan = run.plan
    asks = [f"contract {c.describe_bound()!r}" for c in plan.contracts_for(label)
            if run.registry.contract_kind(c.kind).measures == "memory"]
    if plan.gate.reference is not None and plan.gate.reference.max_memory_growth_pct is not None:
        asks.append("gate.reference.max_memory_growth_pct")
    if not asks:
        return
    view = target_view(plan, run.registry, cp)
    backend, _ = run.registry.target(cp.target)
    if not backend.measures_memory_locally(cp.target, view.options):
        raise CompileError(
            f"{' and '.join(asks)} cannot be judged here: the sessions of target {cp.target!r} run on "
            f"{'an emulated' if view.emulated else 'a remote'} device, and this host's memory is not that "
            "device's", target=label,
            hint="remove the memory bound for this target (contract `targets:`), or measure on the board itself")


def target_view(plan: CompressionPlan, registry: Registry, compiled: CompiledPlan) -> TargetView:
    """The target entry with validated options; the backend decides from them whether it is emulated."""
    backend, info = registry.target(compiled.target)
    spec_entry = next(t for t in plan.targets if t.label == compiled.target_label)
    return TargetView(compiled.target_label, compiled.target, backend.name, info, spec_entry.options,
                      emulated=backend.is_emulated(compiled.target, spec_entry.options))


def not_checked_without_building(plan: CompressionPlan | RawPlan, *, compiled: bool) -> list[str]:
    """What ``validate`` cannot know about this plan without building it: printed after "ok", so "ok" is not
    read as "run will pass" (issue 25: five plans validate accepted were refused by run for NaN outputs)."""
    labels = [t.label for t in plan.targets]
    items = ["the model's outputs: NaN or infinite values show only when the model runs (run refuses them)",
             f"runtime conversion: whether each target's runtime ({', '.join(labels)}) accepts the built model "
             "(operators, opsets, dtypes)"]
    if plan.steps:
        items.append("the steps' work on real data: training that diverges, calibration data outside the "
                     "model's usual input range, an accuracy drop")
    if plan.evaluation.dataset is not None:
        items.append(f"evaluation labels vs the model's classes (dataset {plan.evaluation.dataset!r}): checked "
                     "against its outputs")
    if plan.contracts:
        items.append("every contract's verdict (measured only by run)")
    if not compiled:
        items.append("the steps bound to each target and the data bound to the model (compile: drop --no-compile)")
    return items
