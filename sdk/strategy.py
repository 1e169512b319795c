"""The contract between edgecraft and a compression strategy plugin.

A strategy does two things, at two different times:

* ``resolve`` at **compile time**: given its validated params and a view of the target, decide the
  concrete implementation for that target (e.g. QDQ per-channel on ONNX Runtime, NNCF on OpenVINO),
  fill defaults, and raise :class:`~edgecraft.errors.CompileError` for anything the target cannot do.
  Nothing is built yet, so a plan that cannot work fails in seconds, not after an hour of training.
* ``apply`` at **run time**: transform the model handle of its stage and return the new one, with a
  dict of facts for the report (sparsity reached, layers kept in float, ...).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from edgecraft.models import ModelHandle, Stage
from edgecraft.plan.sections import StrategyParams
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from edgecraft.context import CompileContext, RunContext

__all__ = ["Resolution", "ResolvedStep", "StepResult", "Strategy", "StrategyParams"]

#: A strategy's own params model.
P = TypeVar("P", bound=StrategyParams)


class ResolvedStep(BaseModel):
    """A step bound to one target: serializable, part of the compiled plan and its hash."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    index: int
    label: str
    strategy: str
    stage: Stage
    implementation: str = Field(description="The concrete method chosen for this target.")
    params: dict[str, Any] = Field(description="Params with every default filled in.")
    needs_data: list[str] = Field(default_factory=list, description="Dataset names this step reads.")
    notes: list[str] = Field(default_factory=list, description="Why this implementation was chosen.")

    @property
    def where(self) -> str:
        return f"steps[{self.index}] ({self.label})"


@dataclass
class Resolution:
    """What ``Strategy.resolve`` returns; the compiler turns it into a :class:`ResolvedStep`."""

    stage: Stage
    implementation: str
    params: StrategyParams
    needs_data: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class StepResult:
    """What ``Strategy.apply`` returns: the transformed model and facts for the report."""

    model: ModelHandle
    details: dict[str, Any] = field(default_factory=dict)


class Strategy(ABC, Generic[P]):
    """Subclass this, set the class variables, and register the class from ``edgecraft_register_strategies``.

    Parametrize it with the params model (``class ClusteringStrategy(Strategy[ClusteringParams])``) so
    ``resolve`` takes that model, typed: the plan is bound before compile, so the params a strategy gets are
    always an instance of its ``params_model``. An unparametrized subclass gets :class:`StrategyParams`.
    """

    #: Unique name used in plans (``steps[].strategy``).
    name: ClassVar[str]
    #: The pydantic model of this strategy's params (subclass :class:`StrategyParams`).
    params_model: type[P]
    #: One line for ``edgecraft plugins``.
    summary: ClassVar[str] = ""

    @classmethod
    def default_space(cls, params: P) -> dict[str, dict[str, Any]]:
        """The dimensions ``edgecraft search`` explores for a step of this strategy when the plan's ``search``
        names no space: ``{"params.NAME": {"low": ..., "high": ...} | {"choices": [...]}, "enabled": {...}}``.

        Why on the strategy: only its author knows which params trade accuracy for speed or size, and
        which ranges are sensible; a third-party strategy overrides this exactly like a built-in. ``params``
        are the step's validated params in the plan, so the space can follow its mode (e.g. no channel
        ratio for N:M pruning). The default, ``{}``, leaves the step as the plan has it.
        """
        return {}

    def parse_params(self, raw: Mapping[str, Any]) -> P:
        """Validate params written as data with this strategy's own model (the plan binder reports errors)."""
        return self.params_model.model_validate(raw)

    def params_of(self, step: ResolvedStep) -> P:
        """The resolved params of ``step`` (plain data in the compiled plan) as this strategy's model, in ``apply``."""
        return self.params_model.model_validate(step.params)

    @abstractmethod
    def resolve(self, params: P, ctx: CompileContext) -> Resolution:
        """Bind the step to the target in ``ctx``; raise ``CompileError`` if the target cannot do it.

        ``params`` are the plan's (frozen): return filled-in params as a new instance
        (``params.model_copy(update={...})``)."""

    @abstractmethod
    def apply(self, step: ResolvedStep, model: ModelHandle, ctx: RunContext) -> StepResult:
        """Transform ``model`` (of ``step.stage``) and return the result."""
