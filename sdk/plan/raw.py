"""The plan as written: parsed and checked by the core alone, with the sections plugins own kept as plain data.

This is the first of a plan's two lives. Everything the core defines (contracts, evaluation, latency, gate,
measure, search, placement) is typed and strict here, and the cross-references hold; a step's ``params``,
a target's ``options``, the ``model`` source and each dataset stay the mappings the file holds, because only
the installed plugins know their models. :func:`edgecraft.plan.binding.bind_plan` turns a RawPlan into the
bound :class:`~edgecraft.plan.bound.CompressionPlan`, once. ``edgecraft schema`` starts from this model: it
describes plan files.
"""

from __future__ import annotations

from typing import Any

from edgecraft.plan.spec import Contract, PlanBase, StepBase, TargetBase
from pydantic import Field


class RawStep(StepBase):
    """A step as written: its params are validated by the strategy's own model when the plan is bound."""

    params: dict[str, Any] = Field(default_factory=dict, description="The strategy's params (see `edgecraft "
                                   "schema` for each installed strategy's).")


class RawTarget(TargetBase):
    """A target entry as written: its options are validated by the backend's own model when the plan is bound."""

    options: dict[str, Any] = Field(default_factory=dict, description="The target's options (see `edgecraft "
                                    "schema` for each installed target's).")


class RawPlan(PlanBase):
    """A plan file's content, checked by the core (structure, types, cross-references) but not yet bound."""

    model: dict[str, Any] = Field(
        description="The model source: {kind: onnx|torch|huggingface|<plugin kind>, ...} (validated by that kind).")
    steps: list[RawStep] = Field(default_factory=list)
    targets: list[RawTarget] = Field(min_length=1)
    contracts: list[Contract] = Field(default_factory=list, description="What the result must meet: built-in "
                                      "kinds (accuracy, latency, size, memory, compute) or a plugin's kind.")
    data: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Named datasets: {kind: digits|npz|factory|text|image-folder|<plugin kind>, ...}.")
