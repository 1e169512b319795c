"""Contract kinds: one class per ``kind:`` of the plan's contracts, that knows what it needs measured, how
to check it before anything is built, and how to judge it.

Every place that used to ask "is this an accuracy contract?" (compiling, measuring, judging, a search's
early stop) asks the kind instead, through the registry's table of kinds. The built-in kinds
(:mod:`edgecraft.verify.contract_kinds`) register through the ``edgecraft_register_contract_kinds``
hook and the ``edgecraft`` entry-point group, like a third party's.

A kind is judged when what it ``measures`` is there: ``metrics``, ``latency`` and ``size`` while the
target's sessions are open (latency kinds again after every look of the gate: ``settles``), ``memory``
and ``compute`` afterwards, by :mod:`edgecraft.verify.resources`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel

if TYPE_CHECKING:
    from edgecraft.metrics import Metric
    from edgecraft.plan import CompressionPlan
    from edgecraft.registry import Registry
    from edgecraft.verify.contracts import Verdict
    from edgecraft.verify.measure import InterleavedTimer
    from edgecraft.verify.memory import MemoryStats
    from edgecraft.verify.report import ComputeReport

#: What a contract kind needs measured on the target before it can be judged.
Measure = Literal["metrics", "latency", "size", "memory", "compute"]
#: Measured while the target's sessions are open (the rest after they are closed: memory children must
#: not share the machine with timing).
WITH_SESSIONS: frozenset[str] = frozenset({"metrics", "latency", "size"})



class ContractModel(Protocol):
    """What every contract of the plan has (:mod:`edgecraft.plan.spec`)."""

    @property
    def kind(self) -> str: ...

    @property
    def name(self) -> str | None: ...

    def describe_bound(self) -> str: ...


C = TypeVar("C", bound=ContractModel)


@dataclass
class Measured:
    """What one target's measurement has produced so far: what judges read. Sides are ``baseline``,
    ``compressed`` (and ``reference``); a kind reads only what it ``measures``."""

    plan: CompressionPlan
    label: str
    emulated: bool
    #: The registered metric named so (direction, display).
    metric: Callable[[str], Metric]
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    timer: InterleavedTimer | None = None
    size_bytes: dict[str, int] = field(default_factory=dict)
    memory: Mapping[str, MemoryStats] = field(default_factory=dict)
    compute: Mapping[str, ComputeReport | None] = field(default_factory=dict)


class ContractKind(Generic[C]):
    """One kind of contract. Subclass it, set the class attributes, implement :meth:`judge`, and register
    the class from ``edgecraft_register_contract_kinds``."""

    #: The value of the contract's ``kind:`` field.
    kind: ClassVar[str]
    #: The contract's pydantic model (in the plan).
    model: ClassVar[type[BaseModel]]
    #: What must be measured to judge it.
    measures: ClassVar[Measure]
    #: Its verdict may change as more latency rounds come in: judged again after every look.
    settles: ClassVar[bool] = False
    summary: ClassVar[str] = ""

    def describe(self, contract: C) -> str:
        """The contract's name in reports: its own ``name``, else its kind and bound."""
        return contract.name or f"{self.kind}: {contract.describe_bound()}"

    def metric(self, contract: C) -> str | None:
        """The evaluation metric the contract reads (None: it reads none)."""
        return None

    def check_plan(self, contract: C, index: int, plan: CompressionPlan) -> None:
        """Raise an InputError when the plan cannot measure this contract (``contracts[index]``)."""

    def check_target(self, contract: C, label: str, *, emulated: bool) -> None:
        """Raise a CompileError when target ``label`` cannot give this contract a meaningful verdict."""

    def judge(self, contract: C, measured: Measured) -> Verdict:
        raise NotImplementedError(f"contract kind {self.kind!r} does not implement judge()")


def kind_of(registry: Registry, contract: Any) -> ContractKind[Any]:
    """The registered kind of ``contract`` (an InputError naming the installed kinds when none is)."""
    kind: ContractKind[Any] = registry.contract_kind(contract.kind)
    return kind


def of_measure(registry: Registry, contracts: Iterable[Any],
               measures: Iterable[str]) -> list[tuple[Any, ContractKind[Any]]]:
    """The contracts whose kind measures one of ``measures``, each with its kind, in the plan's order."""
    wanted = set(measures)
    pairs = [(c, kind_of(registry, c)) for c in contracts]
    return [(c, k) for c, k in pairs if k.measures in wanted]


def measures_memory(registry: Registry, plan: CompressionPlan, label: str) -> bool:
    """Whether memory is measured on target ``label``: asked for, or needed by a contract or a reference bound."""
    ref = plan.gate.reference
    return (plan.measure.memory or bool(of_measure(registry, plan.contracts_for(label), ["memory"]))
            or (ref is not None and ref.max_memory_growth_pct is not None))
