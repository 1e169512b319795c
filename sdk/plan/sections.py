"""The base models of a plan: :class:`StrictModel` for the core's own sections, and one base per section a
plugin owns (a strategy's params, a target's options, a model source's and a dataset's params).

Every one is strict (unknown keys are errors) because a plan is a release gate's specification: a
misspelled ``max_drop`` silently ignored would let a regression ship. Every one is frozen because a plan
is bound once (:func:`edgecraft.plan.binding.bind_plan`) and then only read, by the compiler and
everything after it: a strategy that fills in defaults derives new params
(``params.model_copy(update={...})``), it never edits the plan's.

The plugin bases live here, next to the plan, rather than with the plugin contracts
(:mod:`edgecraft.strategy`, :mod:`edgecraft.backend`, which re-export them) so that the plan's types
depend on nothing but pydantic.
"""

from __future__ import annotations

from typing import Literal

from edgecraft.plan.numbers import PlanInt
from pydantic import BaseModel, ConfigDict, Field, field_validator


class StrictModel(BaseModel):
    """Base for every model of a plan: unknown keys are errors, and an instance never changes once made."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- model I/O declarations
DTypeName = Literal["float32", "float16", "float64", "bfloat16", "int64", "int32", "int16", "int8", "uint8",
                    "uint32", "uint64", "bool"]


class InputDecl(StrictModel):
    """What the plan says about one model input; every field is optional and completes the model's own I/O."""

    shape: list[PlanInt | str] | None = Field(
        None, description="Full shape; integers fix dimensions, a string keeps one symbolic (the batch axis), "
        "e.g. [batch, 3, 320, 320] or [1, 64].")
    dtype: DTypeName | None = Field(None, description="Element type (torch sources: default float32).")
    batch_axis: PlanInt | None = Field(
        None, description="The axis that carries samples (default: the axis of the model's batch symbol, else 0); "
        "null for an input without one (a scalar, a fixed state).")

    @field_validator("shape")
    @classmethod
    def _positive_dims(cls, value: list[int | str] | None) -> list[int | str] | None:
        if value is not None and any(isinstance(d, int) and d <= 0 for d in value):
            raise ValueError("every fixed dimension must be a positive integer (use a name for a symbolic one)")
        return value


# ---------------------------------------------------------------- the sections plugins own
class SourceParams(StrictModel):
    """Base of every model source kind's params (built-in and plugin): its ``kind`` and the I/O overrides."""

    kind: str
    inputs: dict[str, InputDecl] = Field(
        default_factory=dict, description="Per-input shape/dtype/batch_axis; fixes symbolic dimensions of the "
        "model's inputs (unlisted inputs keep what the model says).")


class DatasetParams(StrictModel):
    """Base of every dataset kind's params (built-in and plugin)."""

    kind: str
    max_samples: PlanInt | None = Field(None, ge=1, description="Keep only the first N samples.")


class StrategyParams(StrictModel):
    """Base for a strategy's params: strict, so a misspelled param is a plan error; frozen, so the plan's
    params are the ones the user wrote (``resolve`` returns filled-in params as a new instance)."""


class TargetOptions(StrictModel):
    """Base for a target's options: strict, so a misspelled option is a plan error."""
