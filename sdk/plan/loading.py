"""Load a plan from YAML or JSON, parse it, bind it; errors name file, field, value and what fits.

A plan has two lives. :func:`parse_plan` checks what the core owns and returns the
:class:`~edgecraft.plan.raw.RawPlan` (unknown top-level keys, bad contracts, broken cross-references are
errors here); :func:`~edgecraft.plan.binding.bind_plan` types the sections the plugins own and returns the
frozen :class:`~edgecraft.plan.CompressionPlan`. :func:`validate_plan` does both, and :func:`load_plan`
reads the file first: that bound plan is what the compiler and everything after it take.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgecraft.errors import PlanValidationError
from edgecraft.plan.binding import bind_plan, plan_problems
from edgecraft.plan.bound import CompressionPlan
from edgecraft.plan.messages import format_validation_error
from edgecraft.plan.raw import RawPlan
from edgecraft.plan.yaml_safe import load_json_text, load_yaml_text, read_plan_text
from edgecraft.registry import Registry
from pydantic import ValidationError

__all__ = ["bind_plan", "format_validation_error", "load_plan", "parse_plan", "validate_plan"]


def _read(path: Path) -> Any:
    """Parse the plan file (size, alias and duplicate-key checks live in :mod:`edgecraft.plan.yaml_safe`)."""
    text = read_plan_text(path)
    if path.suffix.lower() == ".json":
        return load_json_text(text, str(path))
    return load_yaml_text(text, str(path))


def parse_plan(data: Any, *, source: str = "plan") -> RawPlan:
    """The plan as written, checked by the core alone: a mapping (a file's content), or a plan built in Python."""
    if isinstance(data, RawPlan):
        return data
    if isinstance(data, CompressionPlan):
        data = data.model_dump(by_alias=True, mode="python")
    if not isinstance(data, dict):
        raise PlanValidationError(f"{source}: a plan must be a mapping with keys model, steps, targets, ... "
                                  f"(got {type(data).__name__})")
    try:
        return RawPlan.model_validate(data)
    except ValidationError as exc:
        raise plan_problems(source, format_validation_error(exc, source=source, model=RawPlan, data=data)) from exc


def validate_plan(data: Any, registry: Registry, *, source: str = "plan") -> CompressionPlan:
    """Parse and bind a plan (a mapping, a RawPlan, or a CompressionPlan built in Python) with the installed
    plugins; a plan that is already bound is returned as it is."""
    if isinstance(data, CompressionPlan) and data.is_bound:
        return data
    return bind_plan(parse_plan(data, source=source), registry, source=source)


def load_plan(path: str | Path, registry: Registry) -> tuple[CompressionPlan, Path]:
    """Read, parse and bind a plan file; return the bound plan and the folder relative paths start from."""
    path = Path(path)
    plan = validate_plan(_read(path), registry, source=str(path))
    return plan, path.resolve().parent
