"""Load and validate plans from YAML or JSON, with errors that name file, field, value and what fits.

Validation happens in two passes. The first checks the plan's own structure
(:class:`~edgecraft.plan.CompressionPlan`); the second hands each step's params to its strategy's
model and each target's options to its backend's model. Two passes (rather than one big generated
union) keep error paths readable: ``steps[0].params.sparsity``, not a union tag soup.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

from edgecraft.errors import PlanValidationError
from edgecraft.plan import CompressionPlan
from edgecraft.plan.yaml_safe import load_json_text, load_yaml_text, read_plan_text
from edgecraft.registry import Registry
from edgecraft.safe_text import bounded_repr
from pydantic import BaseModel, ValidationError


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(plan)"


def _strip_union_tags(loc: tuple[Any, ...], data: Any) -> tuple[Any, ...]:
    """Drop the tag pydantic inserts for a discriminated union (``data.test.digits.split`` → ``data.test.split``)."""
    cleaned: list[Any] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str) and part not in node and node.get("kind") == part:
            continue
        cleaned.append(part)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
    return tuple(cleaned)


def _unwrap(annotation: Any) -> list[Any]:
    """The model classes an annotation may hold (through Optional, list, dict, Annotated, unions)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list, dict, tuple):
        found = []
        for arg in typing.get_args(annotation):
            found.extend(_unwrap(arg))
        return found
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _pick(candidates: list[type[BaseModel]], node: Any) -> list[type[BaseModel]]:
    """Narrow union members to the one whose ``kind`` default matches the data's ``kind``."""
    if len(candidates) > 1 and isinstance(node, dict) and "kind" in node:
        narrowed = [c for c in candidates
                    if "kind" in c.model_fields and c.model_fields["kind"].default == node["kind"]]
        return narrowed or candidates
    return candidates


def _model_at(model: type[BaseModel], loc: tuple[Any, ...], data: Any) -> type[BaseModel] | None:
    """The model class at ``loc`` (walking lists, dicts and ``kind``-tagged unions alongside the data)."""
    candidates, node = [model], data
    for part in loc:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            continue
        owners = [c for c in _pick(candidates, node) if part in c.model_fields]
        node = node.get(part) if isinstance(node, dict) else None
        if owners:
            candidates = _unwrap(owners[0].model_fields[part].annotation)
        # otherwise ``part`` is a key of a dict field: the candidates stay the dict's value types
    chosen = _pick(candidates, node)
    return chosen[0] if chosen else None


def _kinds_at(model: type[BaseModel], loc: tuple[Any, ...], data: Any) -> list[str]:
    """The ``kind`` values a union field at ``loc`` accepts (for "kind is missing" errors)."""
    if not loc:
        return []
    owner = _model_at(model, loc[:-1], data)
    key = loc[-1]
    if owner is None:
        return []
    field = owner.model_fields.get(key) if isinstance(key, str) else None
    if field is None:  # loc ends in a dict key or list index: the owner's field is the container
        owner = _model_at(model, loc[:-2], data) if len(loc) > 1 else None
        field = owner.model_fields.get(loc[-2]) if owner is not None and isinstance(loc[-2], str) else None
    if field is None:
        return []
    return [str(c.model_fields["kind"].default) for c in _unwrap(field.annotation) if "kind" in c.model_fields]


def format_validation_error(error: ValidationError, *, source: str, prefix: tuple[Any, ...] = (),
                            model: type[BaseModel] | None = None, data: Any = None) -> list[str]:
    """One line per error: ``source: path = value: problem (accepted: ...)``."""
    lines = []
    for err in error.errors(include_url=False):
        relative = _strip_union_tags(tuple(err["loc"]), data)
        loc = prefix + relative
        path = _format_loc(loc)
        message = err["msg"]
        value = err.get("input")
        if err["type"] == "extra_forbidden" and model is not None:
            owner = _model_at(model, relative[:-1], data)
            if owner is not None:
                message += f"; accepted keys here: {', '.join(sorted(owner.model_fields))}"
            value_text = ""
        elif err["type"] == "union_tag_not_found" and model is not None:
            kinds = _kinds_at(model, relative, data)
            message = f"`kind` is missing; accepted kinds: {', '.join(kinds)}" if kinds else message
            value_text = ""
        elif err["type"] == "missing":
            value_text = ""
        else:
            value_text = f" = {bounded_repr(value, 80)}"  # never the full value: it may be an alias bomb
        lines.append(f"{source}: {path}{value_text}: {message}")
    return lines


def _read(path: Path) -> Any:
    """Parse the plan file (size, alias and duplicate-key checks live in :mod:`edgecraft.plan.yaml_safe`)."""
    text = read_plan_text(path)
    if path.suffix.lower() == ".json":
        return load_json_text(text, str(path))
    return load_yaml_text(text, str(path))


def validate_plan(data: Any, registry: Registry, *, source: str = "plan") -> CompressionPlan:
    """Validate a plan dict (or a plan object) against the core schema and the installed plugins."""
    if isinstance(data, CompressionPlan):
        data = data.model_dump(by_alias=True, mode="python")
        data["steps"] = [{**s, "params": _as_dict(s.get("params", {}))} for s in data.get("steps", [])]
        data["targets"] = [{**t, "options": _as_dict(t.get("options", {}))} for t in data.get("targets", [])]
        data["model"] = _as_dict(data.get("model"))
        data["data"] = {k: _as_dict(v) for k, v in data.get("data", {}).items()}
    if not isinstance(data, dict):
        raise PlanValidationError(f"{source}: a plan must be a mapping with keys model, steps, targets, ... "
                                  f"(got {type(data).__name__})")
    try:
        plan = CompressionPlan.model_validate(data)
    except ValidationError as exc:
        lines = format_validation_error(exc, source=source, model=CompressionPlan, data=data)
        raise PlanValidationError(f"{source}: {len(lines)} problem(s) in the plan\n  " + "\n  ".join(lines)) from exc

    problems: list[str] = []
    problems += _validate_kinds(plan, registry, source)
    for i, step in enumerate(plan.steps):
        if step.strategy not in registry.strategies:
            registry.blame_broken("strategy", step.strategy)
            problems.append(f"{source}: steps[{i}].strategy = {bounded_repr(step.strategy)}: "
                            f"unknown strategy; installed: "
                            f"{', '.join(sorted(registry.strategies)) or 'none'}")
            continue
        strategy = registry.strategy(step.strategy)
        try:
            step.params = strategy.parse_params(step.params)
        except ValidationError as exc:
            problems += format_validation_error(exc, source=source, prefix=("steps", i, "params"),
                                                model=strategy.params_model, data=_as_dict(step.params))
    for i, target in enumerate(plan.targets):
        if target.target not in registry.targets:
            registry.blame_broken("target", target.target)
            problems.append(f"{source}: targets[{i}].target = {bounded_repr(target.target)}: "
                            f"unknown target; installed: "
                            f"{', '.join(sorted(registry.targets)) or 'none'}")
            continue
        _, info = registry.target(target.target)
        try:
            target.options = info.options_model.model_validate(_as_dict(target.options))
        except ValidationError as exc:
            problems += format_validation_error(exc, source=source, prefix=("targets", i, "options"),
                                                model=info.options_model, data=_as_dict(target.options))
    for i, contract in enumerate(plan.contracts):
        metric = getattr(contract, "metric", None)
        if metric is not None and metric not in registry.metrics:
            problems.append(f"{source}: contracts[{i}].metric = {bounded_repr(metric)}: unknown metric; registered: "
                            f"{', '.join(sorted(registry.metrics))}")
    for j, metric in enumerate(plan.evaluation.metrics):
        if metric not in registry.metrics:
            problems.append(f"{source}: evaluation.metrics[{j}] = {bounded_repr(metric)}: unknown metric; registered: "
                            f"{', '.join(sorted(registry.metrics))}")
    if problems:
        raise PlanValidationError(f"{source}: {len(problems)} problem(s) in the plan\n  " + "\n  ".join(problems))
    return plan


def _validate_kinds(plan: CompressionPlan, registry: Registry, source: str) -> list[str]:
    """Second pass for the model source and the datasets: each validated by its kind's own params model."""
    problems: list[str] = []
    raw_model = _as_dict(plan.model)
    kind = raw_model.get("kind")
    if not isinstance(kind, str):
        problems.append(f"{source}: model.kind is missing; installed kinds: "
                        f"{', '.join(sorted(registry.model_sources))}")
    elif kind not in registry.model_sources:
        registry.blame_broken("model source kind", kind)
        problems.append(f"{source}: model.kind = {kind!r}: unknown model source kind; installed kinds: "
                        f"{', '.join(sorted(registry.model_sources)) or 'none'}")
    else:
        model = registry.model_sources[kind].obj.params_model
        try:
            plan.model = model.model_validate(raw_model)
        except ValidationError as exc:
            problems += format_validation_error(exc, source=source, prefix=("model",), model=model, data=raw_model)
    for name in list(plan.data):
        raw = _as_dict(plan.data[name])
        kind = raw.get("kind")
        if not isinstance(kind, str):
            problems.append(f"{source}: data.{name}.kind is missing; installed kinds: "
                            f"{', '.join(sorted(registry.dataset_kinds))}")
            continue
        if kind not in registry.dataset_kinds:
            registry.blame_broken("dataset kind", kind)
            problems.append(f"{source}: data.{name}.kind = {kind!r}: unknown dataset kind; installed kinds: "
                            f"{', '.join(sorted(registry.dataset_kinds)) or 'none'}")
            continue
        model = registry.dataset_kinds[kind].obj.params_model
        try:
            plan.data[name] = model.model_validate(raw)
        except ValidationError as exc:
            problems += format_validation_error(exc, source=source, prefix=("data", name), model=model, data=raw)
    return problems


def ensure_kinds(plan: CompressionPlan, registry: Registry, *, source: str = "plan") -> None:
    """Type ``plan.model`` and ``plan.data`` with their kinds' params (plans built in Python skip load_plan)."""
    from edgecraft.plan import DatasetParams, SourceParams

    if isinstance(plan.model, SourceParams) and all(isinstance(d, DatasetParams) for d in plan.data.values()):
        return
    problems = _validate_kinds(plan, registry, source)
    if problems:
        raise PlanValidationError(f"{source}: {len(problems)} problem(s) in the plan\n  " + "\n  ".join(problems))


def _as_dict(value: Any) -> dict[str, Any]:
    return value.model_dump(mode="python") if isinstance(value, BaseModel) else dict(value or {})


def load_plan(path: str | Path, registry: Registry) -> tuple[CompressionPlan, Path]:
    """Read, parse and validate a plan file; return the plan and the folder relative paths start from."""
    path = Path(path)
    data = _read(path)
    plan = validate_plan(data, registry, source=str(path))
    return plan, path.resolve().parent
