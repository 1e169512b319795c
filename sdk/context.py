"""What a strategy may see: at compile time (:class:`CompileContext`) and run time (:class:`RunContext`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from edgecraft.errors import CompileError
from edgecraft.implementations import ImplementationT, Providers, select_implementation
from edgecraft.progress import NullProgress, Progress

if TYPE_CHECKING:
    from edgecraft.backend import Backend, TargetInfo, TargetOptions
    from edgecraft.datasets import Dataset, DatasetStore
    from edgecraft.feeds import BoundData
    from edgecraft.metrics import Metric
    from edgecraft.modelio import ModelIO
    from edgecraft.models import ModelHandle, TorchModel
    from edgecraft.plan import CompressionPlan
    from edgecraft.strategy import ResolvedStep


class PluginLookup(Protocol):
    """What a context asks of the plugin registry (:class:`edgecraft.registry.Registry` provides it)."""

    def implementations_for(self, capability: str, backend: str) -> Providers: ...

    def metric(self, name: str, *, where: str = "metric") -> Metric: ...


def _implementation(plugins: PluginLookup | None, interface: type[ImplementationT], target: TargetView,
                    error: Callable[[str, str | None], Exception]) -> ImplementationT:
    if plugins is None:
        raise error(f"{interface.capability} cannot be looked up: this context has no plugin registry", None)
    return select_implementation(plugins.implementations_for(interface.capability, target.backend_name), interface,
                                 target=target.target, backend=target.backend_name, error=error)


@dataclass(frozen=True)
class TargetView:
    """One target entry of the plan, bound to the backend that provides it."""

    label: str
    target: str
    backend_name: str
    info: TargetInfo
    options: TargetOptions
    #: Latency here is measured on an emulated device (decided by the backend from the options).
    emulated: bool = False

    def has(self, capability: str) -> bool:
        return capability in self.info.capabilities


@dataclass
class CompileContext:
    """Everything ``Strategy.resolve`` may consult. It must not build or train anything."""

    plan: CompressionPlan
    target: TargetView
    step_index: int
    step_label: str
    #: Kind of the plan's model source: torch-level steps need "torch".
    model_kind: Literal["torch", "onnx"]
    #: The plan's folder: relative paths and 'file.py:function' references resolve from here.
    base_dir: Path = Path(".")
    #: The plan's torch model as loaded (a copy each call), for checks that need real shapes;
    #: None for ONNX model sources.
    original_model: Callable[[], TorchModel] | None = None
    #: The plan's model I/O, completed by model.inputs (None only in hand-built contexts).
    model_io: ModelIO | None = None
    #: The installed plugins, for :meth:`implementation` (None only in hand-built contexts).
    plugins: PluginLookup | None = None

    @property
    def where(self) -> str:
        return f"steps[{self.step_index}] ({self.step_label})"

    def error(self, message: str, *, hint: str | None = None) -> CompileError:
        """A ``CompileError`` naming this step and target; ``raise ctx.error(...)``."""
        return CompileError(message, step=self.where, target=self.target.label, hint=hint)

    def require_dataset(self, name: str | None, purpose: str, *, param: str) -> str:
        """Check that ``name`` is a dataset of the plan; return it or raise naming the param."""
        if name is None:
            raise self.error(f"{purpose} needs a dataset: set params.{param} to one of the plan's data "
                             f"({sorted(self.plan.data) or 'none defined'})")
        if name not in self.plan.data:
            raise self.error(f"params.{param} = {name!r} is not in the plan's data "
                             f"(defined: {sorted(self.plan.data) or 'none'})")
        return name

    def has_accuracy_contract(self) -> bool:
        return self.plan.has_accuracy_contract(self.target.label)

    def implementation(self, interface: type[ImplementationT]) -> ImplementationT:
        """This target's backend's implementation of ``interface`` (e.g. ``edgecraft.quantize.Int8Implementation``);
        a ``CompileError`` naming the target, its backend, its reason and the backends that do provide it if none."""
        return _implementation(self.plugins, interface, self.target, lambda m, h: self.error(m, hint=h))


class Evaluator(Protocol):
    """Measures models on the run's target against its baseline, on the plan's evaluation data.

    What an accuracy-aware step needs, as one service: :class:`edgecraft.verify.evaluator.TargetEvaluator`
    implements it; a strategy reaches it through :meth:`RunContext.evaluate` and
    :meth:`RunContext.baseline_metrics`.
    """

    @property
    def metrics(self) -> Sequence[Metric]:
        """The plan's evaluation metrics (``evaluation.metrics``), as objects."""
        ...

    def evaluate(self, model: ModelHandle, dataset: str | None = None) -> dict[str, float]:
        """Metrics of ``model`` built and run on the target, on the evaluation data or on ``dataset``."""
        ...

    def baseline_metrics(self, dataset: str | None = None) -> dict[str, float]:
        """The baseline's metrics on the target (same data)."""
        ...


class ModelSource(Protocol):
    """The plan's model as loaded for the run (:class:`edgecraft.model_source.ModelSourceLoader`)."""

    @property
    def kind(self) -> str:
        """``torch`` or ``onnx``: the stage the source's model starts at."""
        ...

    def original_copy(self) -> TorchModel:
        """A fresh copy of the plan's torch model, before any step."""
        ...


@dataclass
class RunContext:
    """Everything ``Strategy.apply`` may use while it transforms a model."""

    plan: CompressionPlan
    target: TargetView
    backend: Backend
    step: ResolvedStep
    work_dir: Path
    datasets: DatasetStore
    seed: int
    #: The plan's model I/O (every input with dtype, shape and batch axis; outputs), completed by model.inputs.
    io: ModelIO
    #: The plan's folder: relative paths and 'file.py:function' references resolve from here.
    base_dir: Path = Path(".")
    progress: Progress = field(default_factory=NullProgress)
    #: The plan's model source (the teacher for distillation, the reference for recovery).
    source: ModelSource | None = None
    #: Measurements on this target (None: the plan has no evaluation dataset).
    evaluator: Evaluator | None = None
    #: The installed plugins, for :meth:`implementation` and :meth:`metric` (None only in hand-built contexts).
    plugins: PluginLookup | None = None

    def dataset(self, name: str) -> Dataset:
        return self.datasets.get(name)

    def feeds(self, name: str) -> BoundData:
        """Dataset ``name`` bound to the plan's model inputs: feeds for any slice of samples."""
        return self.datasets.bound(name)

    @property
    def original_model(self) -> Callable[[], TorchModel] | None:
        """A fresh copy of the plan's model before any step, when it is a torch model (else None)."""
        if self.source is None or self.source.kind != "torch":
            return None
        return self.source.original_copy

    def _evaluator(self) -> Evaluator:
        if self.evaluator is None:
            raise RuntimeError("this run has no evaluation dataset (plan.evaluation.dataset)")
        return self.evaluator

    def evaluate(self, model: ModelHandle, dataset: str | None = None) -> dict[str, float]:
        """Metrics of ``model`` measured on the target runtime (not on torch): what ships is what runs. On the
        plan's evaluation data, or on ``dataset`` (a step that selects on other data than the report judges)."""
        return self._evaluator().evaluate(model, dataset) if dataset is not None else self._evaluator().evaluate(model)

    def baseline_metrics(self, dataset: str | None = None) -> dict[str, float]:
        """The baseline's metrics on this target (same data), for accuracy-aware loops."""
        return (self._evaluator().baseline_metrics(dataset) if dataset is not None
                else self._evaluator().baseline_metrics())

    def implementation(self, interface: type[ImplementationT]) -> ImplementationT:
        """This target's backend's implementation of ``interface`` (what ``resolve`` was given at compile time)."""
        return _implementation(self.plugins, interface, self.target, lambda m, h: CompileError(
            m, step=self.step.where, target=self.target.label, hint=h))

    def metric(self, name: str) -> Metric:
        """The registered metric ``name`` (its direction, whether it needs labels or the baseline's outputs)."""
        if self.plugins is None:
            raise RuntimeError(f"metric {name!r} cannot be looked up: this context has no plugin registry")
        return self.plugins.metric(name, where=f"{self.step.where}: metric")

    def step_dir(self) -> Path:
        path = self.work_dir / f"step{self.step.index}-{self.step.strategy}"
        path.mkdir(parents=True, exist_ok=True)
        return path
