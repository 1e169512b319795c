"""Bind a plan once: every section a plugin owns validated by that plugin's own model, given the registry.

:func:`bind_plan` is the one place a :class:`~edgecraft.plan.raw.RawPlan` becomes the frozen, fully typed
:class:`~edgecraft.plan.bound.CompressionPlan`: each step's params become its strategy's ``params_model``,
each target's options its backend's options model, the model source and each dataset their kind's params.
Nothing validates them again afterwards.

Each section is validated on its own, with its own model, rather than as one big generated union: error
paths stay readable (``steps[0].params.sparsity``, not a union tag soup), and every problem of the plan is
reported at once.
"""

from __future__ import annotations

from typing import Any

from edgecraft.errors import PlanValidationError
from edgecraft.plan.bound import CompressionPlan, StepSpec, TargetSpec, mark_bound
from edgecraft.plan.messages import format_validation_error
from edgecraft.plan.raw import RawPlan
from edgecraft.plan.spec import PlanBase, PluginContract
from edgecraft.registry import Registry
from edgecraft.safe_text import bounded_repr
from pydantic import ValidationError

#: The sections :func:`bind_plan` types; every other field of the raw plan is carried over as it is.
_PLUGIN_SECTIONS = frozenset({"model", "steps", "targets", "data"})


def plan_problems(source: str, problems: list[str]) -> PlanValidationError:
    """The one error for every problem found in a plan (exit 2)."""
    return PlanValidationError(f"{source}: {len(problems)} problem(s) in the plan\n  " + "\n  ".join(problems))


def bind_plan(raw: RawPlan, registry: Registry, *, source: str = "plan") -> CompressionPlan:
    """Type every plugin-owned section of ``raw`` with the installed plugins' models; report every problem."""
    problems: list[str] = []
    model = _bind_model(raw, registry, source, problems)
    data = _bind_data(raw, registry, source, problems)
    steps = _bind_steps(raw, registry, source, problems)
    targets = _bind_targets(raw, registry, source, problems)
    contracts = _bind_contracts(raw, registry, source, problems)
    for i, contract in enumerate(raw.contracts):
        metric = getattr(contract, "metric", None)
        if metric is not None and metric not in registry.metrics:
            problems.append(f"{source}: contracts[{i}].metric = {bounded_repr(metric)}: unknown metric; registered: "
                            f"{', '.join(sorted(registry.metrics))}")
    for j, metric in enumerate(raw.evaluation.metrics):
        if metric not in registry.metrics:
            problems.append(f"{source}: evaluation.metrics[{j}] = {bounded_repr(metric)}: unknown metric; registered: "
                            f"{', '.join(sorted(registry.metrics))}")
    if problems or model is None:
        raise plan_problems(source, problems)
    kept = {name: getattr(raw, name) for name in PlanBase.model_fields if name not in (*_PLUGIN_SECTIONS, "contracts")}
    return mark_bound(CompressionPlan(**kept, model=model, steps=steps, targets=targets, data=data,
                                      contracts=contracts))


def _bind_contracts(raw: RawPlan, registry: Registry, source: str, problems: list[str]) -> list[Any]:
    """Built-in contracts as parsed; a plugin kind's contract validated by that kind's own model."""
    bound: list[Any] = []
    for i, contract in enumerate(raw.contracts):
        if not isinstance(contract, PluginContract):
            bound.append(contract)
            continue
        if contract.kind not in registry.contract_kinds:
            registry.blame_broken("contract kind", contract.kind)
            problems.append(f"{source}: contracts[{i}].kind = {bounded_repr(contract.kind)}: unknown contract kind; "
                            f"installed: {', '.join(sorted(registry.contract_kinds)) or 'none'}")
            continue
        model = registry.contract_kinds[contract.kind].obj.model
        written = contract.model_dump(exclude_unset=True)
        try:
            bound.append(model.model_validate(written))
        except ValidationError as exc:
            problems += format_validation_error(exc, source=source, prefix=("contracts", i), model=model, data=written)
    return bound


def _bind_model(raw: RawPlan, registry: Registry, source: str, problems: list[str]) -> Any:
    kind = raw.model.get("kind")
    if not isinstance(kind, str):
        problems.append(f"{source}: model.kind is missing; installed kinds: "
                        f"{', '.join(sorted(registry.model_sources))}")
        return None
    if kind not in registry.model_sources:
        registry.blame_broken("model source kind", kind)
        problems.append(f"{source}: model.kind = {kind!r}: unknown model source kind; installed kinds: "
                        f"{', '.join(sorted(registry.model_sources)) or 'none'}")
        return None
    params_model = registry.model_sources[kind].obj.params_model
    try:
        return params_model.model_validate(raw.model)
    except ValidationError as exc:
        problems += format_validation_error(exc, source=source, prefix=("model",), model=params_model, data=raw.model)
        return None


def _bind_data(raw: RawPlan, registry: Registry, source: str, problems: list[str]) -> dict[str, Any]:
    bound: dict[str, Any] = {}
    for name, params in raw.data.items():
        kind = params.get("kind")
        if not isinstance(kind, str):
            problems.append(f"{source}: data.{name}.kind is missing; installed kinds: "
                            f"{', '.join(sorted(registry.dataset_kinds))}")
            continue
        if kind not in registry.dataset_kinds:
            registry.blame_broken("dataset kind", kind)
            problems.append(f"{source}: data.{name}.kind = {kind!r}: unknown dataset kind; installed kinds: "
                            f"{', '.join(sorted(registry.dataset_kinds)) or 'none'}")
            continue
        params_model = registry.dataset_kinds[kind].obj.params_model
        try:
            bound[name] = params_model.model_validate(params)
        except ValidationError as exc:
            problems += format_validation_error(exc, source=source, prefix=("data", name), model=params_model,
                                                data=params)
    return bound


def _bind_steps(raw: RawPlan, registry: Registry, source: str, problems: list[str]) -> list[StepSpec]:
    bound: list[StepSpec] = []
    for i, step in enumerate(raw.steps):
        if step.strategy not in registry.strategies:
            registry.blame_broken("strategy", step.strategy)
            problems.append(f"{source}: steps[{i}].strategy = {bounded_repr(step.strategy)}: "
                            f"unknown strategy; installed: "
                            f"{', '.join(sorted(registry.strategies)) or 'none'}")
            continue
        strategy = registry.strategy(step.strategy)
        try:
            params = strategy.parse_params(step.params)
        except ValidationError as exc:
            problems += format_validation_error(exc, source=source, prefix=("steps", i, "params"),
                                                model=strategy.params_model, data=step.params)
            continue
        bound.append(StepSpec(strategy=step.strategy, name=step.name, params=params))
    return bound


def _bind_targets(raw: RawPlan, registry: Registry, source: str, problems: list[str]) -> list[TargetSpec]:
    bound: list[TargetSpec] = []
    for i, target in enumerate(raw.targets):
        if target.target not in registry.targets:
            registry.blame_broken("target", target.target)
            problems.append(f"{source}: targets[{i}].target = {bounded_repr(target.target)}: "
                            f"unknown target; installed: "
                            f"{', '.join(sorted(registry.targets)) or 'none'}")
            continue
        _, info = registry.target(target.target)
        try:
            options = info.options_model.model_validate(target.options)
        except ValidationError as exc:
            problems += format_validation_error(exc, source=source, prefix=("targets", i, "options"),
                                                model=info.options_model, data=target.options)
            continue
        bound.append(TargetSpec(target=target.target, name=target.name, options=options,
                                placement=target.placement))
    return bound
