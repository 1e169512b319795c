"""The bound plan: every section a plugin owns is an instance of that plugin's own model, and nothing changes.

This is the second and last of a plan's lives (the first is :class:`~edgecraft.plan.raw.RawPlan`):
:func:`~edgecraft.plan.loading.load_plan` returns it, and the compiler and everything after it (build,
measure, judge, report, search) take it and only read it. Each step's ``params`` is its strategy's
``params_model``, each target's ``options`` its backend's options model, ``model`` the source kind's params
and each dataset its kind's params; all of them frozen.

A CompressionPlan may also be built in Python from those models (``CompressionPlan(model=OnnxSourceParams(
...), steps=[StepSpec(strategy="quantization", params=QuantizationParams(...))], targets=["ort-cpu"])``).
Such a plan is typed but not yet checked against the installed plugins (``is_bound`` is False: a target's
options may still be the empty base); :func:`~edgecraft.plan.loading.validate_plan` and ``run_plan`` bind it
first. Plain mappings are refused: a plan written as data is validated with ``validate_plan(data, registry)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edgecraft.plan.sections import DatasetParams, SourceParams, StrategyParams, TargetOptions
from edgecraft.plan.spec import Contract, PlanBase, StepBase, TargetBase
from pydantic import BaseModel, Field, PrivateAttr, SerializeAsAny, field_validator

_AS_DATA = "or validate a plan written as data with edgecraft.validate_plan(data, registry)"


def _typed(value: Any, what: str) -> Any:
    """Refuse a mapping where a plugin's model belongs (it would otherwise pass as the empty base model)."""
    if isinstance(value, Mapping):
        raise ValueError(f"a CompressionPlan holds typed sections: give {what}, {_AS_DATA}")
    return value


class StepSpec(StepBase):
    """A bound step: ``params`` is an instance of the strategy's ``params_model``."""

    params: SerializeAsAny[StrategyParams] = Field(default_factory=StrategyParams)

    @field_validator("params", mode="before")
    @classmethod
    def _params_typed(cls, value: Any) -> Any:
        return _typed(value, "the strategy's params model (e.g. QuantizationParams(...))")


class TargetSpec(TargetBase):
    """A bound target entry: ``options`` is an instance of the backend's options model for this target."""

    options: SerializeAsAny[TargetOptions] = Field(default_factory=TargetOptions)

    @field_validator("options", mode="before")
    @classmethod
    def _options_typed(cls, value: Any) -> Any:
        return _typed(value, "the target's options model (see TargetInfo.options_model)")


class CompressionPlan(PlanBase):
    """The bound plan: what to do to a model, for which targets, and which contracts the result must meet."""

    model: SerializeAsAny[SourceParams]
    steps: list[StepSpec] = Field(default_factory=list)
    targets: list[TargetSpec] = Field(min_length=1)
    data: dict[str, SerializeAsAny[DatasetParams]] = Field(default_factory=dict)
    #: Built-in kinds' models, and for a plugin's kind an instance of that kind's own ``model``.
    contracts: list[Contract | SerializeAsAny[BaseModel]] = Field(default_factory=list)

    #: Set by :func:`~edgecraft.plan.binding.bind_plan` only: every section checked against the plugins.
    _bound: bool = PrivateAttr(default=False)

    @field_validator("model", mode="before")
    @classmethod
    def _model_typed(cls, value: Any) -> Any:
        return _typed(value, "the model source kind's params model (e.g. OnnxSourceParams(path=...))")

    @field_validator("data", mode="before")
    @classmethod
    def _data_typed(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            for name, params in value.items():
                _typed(params, f"data.{name} as its dataset kind's params model")
        return value

    @property
    def is_bound(self) -> bool:
        """Whether the installed plugins checked and typed every section (false for a plan built in Python)."""
        return self._bound


def mark_bound(plan: CompressionPlan) -> CompressionPlan:
    """Record that ``plan`` was bound (called by :func:`~edgecraft.plan.binding.bind_plan` alone)."""
    plan._bound = True
    return plan
