"""The typed search space: dimensions over step params, checked against each strategy's own params model.

A dimension is a path into the plan (``steps[pruning].params.ratio``, ``steps[0].enabled``) and a
range or a list of choices. It is validated like the rest of the plan, before any trial runs, so a
typo costs seconds, not a night of trials:

* the step must exist (by name, strategy or index) and the param must be a field of the strategy's
  pydantic params model (nested models with dots);
* a range must lie inside the field's own constraints (``ge``/``gt``/``le``/``lt`` in its
  ``Field(...)``), and each end and each choice must validate with the model;
* every value must compile for the target (:func:`probe_target`): a range end that a strategy's
  ``resolve`` refuses (a pruning ratio of 1) is an error naming the dimension; a choice one target
  cannot do (dynamic int8 on OpenVINO) is dropped from that target's space, with a note.
"""

from __future__ import annotations

import copy
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, SupportsFloat

import annotated_types
from edgecraft.errors import EdgecraftError, PlanValidationError
from edgecraft.plan import CompressionPlan
from edgecraft.plan.search import ChoiceDim, RangeDim, SpaceDim, space_from_raw
from edgecraft.registry import Registry
from edgecraft.safe_text import bounded_repr
from pydantic import BaseModel, ValidationError

_PATH = re.compile(r"^steps\[(?P<ref>[^\]]+)\]\.(?P<rest>enabled|params\.(?P<param>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*))$")


@dataclass
class Dimension:
    """One searched value: where it goes in the plan and what it may take."""

    path: str
    step_index: int
    step_label: str
    param: tuple[str, ...] | None  # None: the step's ``enabled`` switch
    dim: SpaceDim
    is_int: bool = False
    #: Choices this target cannot compile, with the reason (dropped from the target's space).
    dropped: dict[str, str] = field(default_factory=dict)

    @property
    def choices(self) -> list[Any] | None:
        return self.dim.choices if isinstance(self.dim, ChoiceDim) else None

    def describe(self) -> str:
        if isinstance(self.dim, ChoiceDim):
            return f"{self.path} in {self.dim.choices}"
        kind = "int" if self.is_int else "float"
        return f"{self.path} in [{self.dim.low:g}, {self.dim.high:g}] ({kind}{', log' if self.dim.log else ''})"


def _step_index(plan: CompressionPlan, ref: str) -> int:
    if ref.isdigit():
        index = int(ref)
        if index >= len(plan.steps):
            raise ValueError(f"no step {index} (the plan has {len(plan.steps)})")
        return index
    by_label = [i for i, s in enumerate(plan.steps) if s.label == ref]
    by_strategy = [i for i, s in enumerate(plan.steps) if s.strategy == ref]
    found = by_label or by_strategy
    if not found:
        raise ValueError(f"no step {ref!r}; steps: {[s.label for s in plan.steps] or 'none'} (a name, a strategy "
                         "or an index)")
    if len(found) > 1:
        raise ValueError(f"{ref!r} names steps {found}; give them a `name` or use the index")
    return found[0]


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return [m for a in typing.get_args(annotation) for m in _models_in(a)]
    return [annotation] if isinstance(annotation, type) and issubclass(annotation, BaseModel) else []


def _scalar_types(annotation: Any) -> set[type]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return {t for a in typing.get_args(annotation) for t in _scalar_types(a)}
    if origin is typing.Literal:
        return {type(a) for a in typing.get_args(annotation)}
    return {annotation} if isinstance(annotation, type) else set()


def _field(model: type[BaseModel], param: tuple[str, ...]) -> Any:
    """The pydantic FieldInfo at a dotted param path (ValueError naming the accepted keys)."""
    current = model
    for depth, name in enumerate(param):
        if name not in current.model_fields:
            where = ".".join(param[:depth]) or "params"
            raise ValueError(f"{current.__name__} has no param {name!r} (under {where}: "
                             f"{', '.join(sorted(current.model_fields))})")
        info = current.model_fields[name]
        if depth == len(param) - 1:
            return info
        nested = _models_in(info.annotation)
        if not nested:
            raise ValueError(f"param {'.'.join(param[:depth + 1])} is not a nested model")
        current = nested[0]
    raise ValueError("empty param path")


def _number(bound: object) -> float:
    """A field's bound as a float (annotated_types types ``ge``/``gt``/``le``/``lt`` only as comparable)."""
    if not isinstance(bound, SupportsFloat):
        raise ValueError(f"the bound {bound!r} is not a number")
    return float(bound)


def field_bounds(info: Any) -> tuple[float | None, bool, float | None, bool]:
    """(lower, lower_inclusive, upper, upper_inclusive) from a field's ``ge``/``gt``/``le``/``lt``."""
    low: float | None = None
    high: float | None = None
    low_inc = high_inc = True
    for meta in info.metadata:
        if isinstance(meta, annotated_types.Ge):
            low, low_inc = _number(meta.ge), True
        elif isinstance(meta, annotated_types.Gt):
            low, low_inc = _number(meta.gt), False
        elif isinstance(meta, annotated_types.Le):
            high, high_inc = _number(meta.le), True
        elif isinstance(meta, annotated_types.Lt):
            high, high_inc = _number(meta.lt), False
    return low, low_inc, high, high_inc


def _set_in(params: dict[str, Any], param: tuple[str, ...], value: Any) -> None:
    node = params
    for name in param[:-1]:
        child = node.get(name)
        if not isinstance(child, dict):
            child = {} if child is None else (child.model_dump() if isinstance(child, BaseModel) else dict(child))
            node[name] = child
        node = child
    node[param[-1]] = value


def default_space(plan: CompressionPlan, registry: Registry) -> dict[str, SpaceDim]:
    """Each step's strategy's ``default_space()``, prefixed with the step's path (its label, or its index when
    two steps share a label)."""
    out: dict[str, SpaceDim] = {}
    for index, step in enumerate(plan.steps):
        strategy = registry.strategy(step.strategy)
        ref = step.label if sum(1 for s in plan.steps if s.label == step.label) == 1 else str(index)
        raw = type(strategy).default_space(step.params) or {}
        for rel, dim in space_from_raw(raw).items():
            out[f"steps[{ref}].{rel}"] = dim
    return out


def resolve_space(plan: CompressionPlan, registry: Registry, *, source: str = "plan") -> list[Dimension]:
    """Typed dimensions of ``plan.search.space`` (or the strategies' default spaces), checked against each
    strategy's params model; PlanValidationError (exit 2) lists every bad entry by its path."""
    spec = plan.search
    raw = dict(spec.space) if spec is not None and spec.space else default_space(plan, registry)
    user = spec is not None and bool(spec.space)
    problems: list[str] = []
    dims: list[Dimension] = []
    for path, dim in raw.items():
        where = f"{source}: search.space.{path}" if user else f"{source}: default search space {path}"
        match = _PATH.match(path)
        if match is None:
            problems.append(f"{where}: not a space path; use 'steps[LABEL].params.PARAM' or 'steps[LABEL].enabled'")
            continue
        try:
            index = _step_index(plan, match["ref"])
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        step = plan.steps[index]
        if match["rest"] == "enabled":
            if not isinstance(dim, ChoiceDim) or not all(isinstance(c, bool) for c in dim.choices):
                problems.append(f"{where}: 'enabled' takes {{choices: [true, false]}}")
                continue
            dims.append(Dimension(path, index, step.label, None, dim))
            continue
        param = tuple(match["param"].split("."))
        strategy = registry.strategy(step.strategy)
        try:
            info = _field(strategy.params_model, param)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        types_ = _scalar_types(info.annotation)
        is_int = int in types_ and float not in types_
        if isinstance(dim, RangeDim):
            if not types_ & {int, float}:
                problems.append(f"{where}: {step.strategy} param {'.'.join(param)} is not numeric "
                                f"({info.annotation}); give {{choices: [...]}}")
                continue
            low, low_inc, high, high_inc = field_bounds(info)
            bad = []
            if low is not None and (dim.low < low or (not low_inc and dim.low <= low)):
                bad.append(f"low {dim.low:g} is below the param's bound ({'>=' if low_inc else '>'} {low:g})")
            if high is not None and (dim.high > high or (not high_inc and dim.high >= high)):
                bad.append(f"high {dim.high:g} is above the param's bound ({'<=' if high_inc else '<'} {high:g})")
            if is_int and (dim.low != math.floor(dim.low) or dim.high != math.floor(dim.high)):
                bad.append("an integer param takes an integer range")
            if bad:
                problems.append(f"{where}: " + "; ".join(bad))
                continue
            values: list[Any] = [int(dim.low), int(dim.high)] if is_int else [dim.low, dim.high]
        else:
            values = list(dim.choices)
        for value in values:
            candidate = _step_params(step.params)
            _set_in(candidate, param, value)
            try:
                strategy.parse_params(candidate)
            except ValidationError as exc:
                first = exc.errors(include_url=False)[0]
                problems.append(f"{where}: value {bounded_repr(value)} is not accepted by {step.strategy}: "
                                f"{first['msg']}")
                break
        else:
            dims.append(Dimension(path, index, step.label, param, dim, is_int))
    if problems:
        raise PlanValidationError(f"{source}: {len(problems)} problem(s) in the search space\n  "
                                  + "\n  ".join(problems))
    return dims


def _step_params(params: Any) -> dict[str, Any]:
    return copy.deepcopy(params.model_dump(mode="json") if isinstance(params, BaseModel) else dict(params or {}))


def apply_recipe(raw: dict[str, Any], dims: list[Dimension], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of the raw plan dict with the recipe's values set and the switched-off steps removed."""
    plan = copy.deepcopy(raw)
    steps = plan.get("steps", [])
    off: set[int] = set()
    for dim in dims:
        if dim.path not in values:
            continue
        value = values[dim.path]
        if dim.param is None:
            if value is False:
                off.add(dim.step_index)
            continue
        params = steps[dim.step_index].setdefault("params", {})
        _set_in(params, dim.param, value)
    plan["steps"] = [s for i, s in enumerate(steps) if i not in off]
    return plan


def probe_values(dim: Dimension) -> list[Any]:
    if isinstance(dim.dim, ChoiceDim):
        return list(dim.dim.choices)
    return [int(dim.dim.low), int(dim.dim.high)] if dim.is_int else [dim.dim.low, dim.dim.high]


def probe_target(raw: dict[str, Any], dims: list[Dimension], label: str,
                 compile_fn: Any, *, user_space: bool, source: str = "plan") -> tuple[list[Dimension], list[str]]:
    """Compile each dimension's extreme values (range ends, every choice) for one target.

    A range end that does not compile is an error naming the dimension (the range is wrong) in a space
    the user wrote; in a strategy's default space (written without the model) the range is narrowed
    to the part that compiles, with a note (a pruning ratio of 0.8 that would empty a 32-channel layer
    at ``round_to: 8`` becomes 0.75). A choice that does not compile is dropped from this target's space
    (the target cannot do it), unless no choice is left. Returns the target's dimensions and notes.
    """
    problems: list[str] = []
    notes: list[str] = []
    out: list[Dimension] = []
    for dim in dims:
        failures: dict[str, str] = {}
        for value in probe_values(dim):
            try:
                compile_fn(apply_recipe(raw, dims, {dim.path: value}))
            except EdgecraftError as exc:
                if not getattr(exc, "exit_code", 2) == 2:
                    raise
                failures[repr(value)] = str(getattr(exc, "message", exc)).splitlines()[0].strip()
        where = f"{source}: {'search.space.' if user_space else 'default search space '}{dim.path}"
        if isinstance(dim.dim, RangeDim) and failures and not user_space and len(failures) == 1:
            narrowed = _narrow(raw, dims, dim, compile_fn, failed_high=repr(probe_values(dim)[1]) in failures)
            if narrowed is not None:
                value, reason = next(iter(failures.items()))
                notes.append(f"{label}: {dim.path}: narrowed to [{narrowed.dim.low:g}, {narrowed.dim.high:g}] "
                             f"({value} does not compile on this target: {reason})")
                out.append(narrowed)
                continue
        if isinstance(dim.dim, RangeDim) and failures:
            value, reason = next(iter(failures.items()))
            problems.append(f"{where}: value {value} does not compile on {label!r}: {reason}")
            continue
        choices = dim.choices or []
        kept = [c for c in choices if repr(c) not in failures]
        if isinstance(dim.dim, ChoiceDim) and not kept:
            problems.append(f"{where}: no choice compiles on {label!r}: "
                            + "; ".join(f"{v}: {r}" for v, r in failures.items()))
            continue
        if isinstance(dim.dim, ChoiceDim) and failures:
            notes.append(f"{label}: {dim.path}: dropped {', '.join(failures)} (does not compile on this target: "
                         f"{next(iter(failures.values()))})")
            dim = Dimension(dim.path, dim.step_index, dim.step_label, dim.param, ChoiceDim(choices=kept),
                            dim.is_int, failures)
        if isinstance(dim.dim, ChoiceDim) and len(dim.dim.choices) == 1 and dim.param is not None:
            # Only one value left: it is fixed for this target (still set, so the recipe says it).
            pass
        out.append(dim)
    if problems:
        raise PlanValidationError(f"{source}: {len(problems)} problem(s) in the search space\n  "
                                  + "\n  ".join(problems))
    return out, notes


def _narrow(raw: dict[str, Any], dims: list[Dimension], dim: Dimension, compile_fn: Any, *,
            failed_high: bool, steps: int = 10) -> Dimension | None:
    """The range cut back from its failing end to the last value that compiles (bisection), or None."""
    assert isinstance(dim.dim, RangeDim)
    good, bad = (dim.dim.low, dim.dim.high) if failed_high else (dim.dim.high, dim.dim.low)
    for _ in range(steps):
        middle = (good + bad) / 2
        if dim.is_int:
            middle = math.floor(middle) if failed_high else math.ceil(middle)
            if middle in (good, bad):
                break
        try:
            compile_fn(apply_recipe(raw, dims, {dim.path: int(middle) if dim.is_int else middle}))
        except EdgecraftError as exc:
            if getattr(exc, "exit_code", 2) != 2:
                raise
            bad = middle
        else:
            good = middle
    if not dim.is_int:  # a readable bound on the compiling side
        good = math.floor(good * 1000) / 1000 if failed_high else math.ceil(good * 1000) / 1000
    low, high = (dim.dim.low, good) if failed_high else (good, dim.dim.high)
    if low >= high:
        return None
    return Dimension(dim.path, dim.step_index, dim.step_label, dim.param,
                     dim.dim.model_copy(update={"low": low, "high": high}), dim.is_int, dict(dim.dropped))


def absolutize(raw: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """The raw plan with relative file references (``model.py:build``, ``data/x.npz``) made absolute.

    Why: ``best.<target>.plan.yaml`` is written into the search's output folder, not next to the plan,
    and must compile to the very same cache key as the trial that built it; the model source's text is
    part of that key, so trials and the written plan both use the absolute form.
    """
    plan = copy.deepcopy(raw)

    def fix(value: Any, loose: bool) -> Any:
        if isinstance(value, dict):
            return {k: fix(v, loose) for k, v in value.items()}
        if isinstance(value, list):
            return [fix(v, loose) for v in value]
        if not isinstance(value, str) or not value or "://" in value or Path(value).is_absolute():
            return value
        head, sep, tail = value.partition(":")
        name = head if sep and head.endswith(".py") else value
        if not loose and "/" not in name and "." not in name:
            return value  # a plain word in step params is a dataset or a mode, not a file
        candidate = base_dir / name
        try:
            exists = candidate.exists()
        except OSError:
            exists = False
        if not exists:
            return value
        resolved = str(candidate.resolve())
        return f"{resolved}:{tail}" if name is head and sep else resolved

    if isinstance(plan.get("model"), dict):
        plan["model"] = fix(plan["model"], True)
    if isinstance(plan.get("data"), dict):
        plan["data"] = {k: fix(v, True) for k, v in plan["data"].items()}
    for step in plan.get("steps", []) or []:
        if isinstance(step, dict) and isinstance(step.get("params"), dict):
            step["params"] = fix(step["params"], False)
    return plan


def for_target(raw: dict[str, Any], label: str) -> dict[str, Any]:
    """The raw plan restricted to one target entry: its contracts only (their ``targets`` narrowed to it),
    no ``search`` section. Trials and ``best.<target>.plan.yaml`` are both this, so they share cache keys."""
    plan = copy.deepcopy(raw)
    plan.pop("search", None)
    targets = [t if isinstance(t, dict) else {"target": t} for t in plan.get("targets", [])]
    plan["targets"] = [t for t in targets if (t.get("name") or t.get("target")) == label]
    contracts = []
    for contract in plan.get("contracts", []) or []:
        names = contract.get("targets")
        if names is None:
            contracts.append(contract)
        elif label in names:
            contracts.append({**contract, "targets": [label]})
    plan["contracts"] = contracts
    return plan
