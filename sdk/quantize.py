"""What a backend's int8 implementation provides so that the ``quantization`` strategy can drive it.

The algorithm is written once, in the strategy: which recipe suits the model (CNN or transformer), how
much accuracy the step may spend, which layers go back to float until the accuracy contract holds.
How int8 is made on one runtime (ONNX Runtime's quantizer, NNCF on OpenVINO, ...) is the backend's: it
subclasses :class:`Int8Implementation`, sets ``backend``, and registers the class from
``edgecraft_register_implementations`` (see :mod:`edgecraft.implementations`).

The flow, per step and target:

* compile time: :meth:`Int8Implementation.resolve` completes the runtime-neutral :class:`Int8Request`
  for this target (settles ``auto`` values, refuses what the runtime cannot do with ``ctx.error``, names
  the datasets it reads); the strategy then settles accuracy-awareness, and
  :meth:`Int8Implementation.describe` says what will run;
* run time: :meth:`Int8Implementation.prepare` returns an :class:`Int8Job` for the model, which the
  strategy builds once (``build()``), or again and again with more layers in float (``build(keep)``,
  most sensitive first by ``rank()``), or hands an :class:`AccuracyGoal` when the runtime has its own
  accuracy-aware search (``accuracy_control``).

Nothing here imports a runtime; backends import only ``edgecraft``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from edgecraft.implementations import Implementation

if TYPE_CHECKING:
    from edgecraft.context import CompileContext
    from edgecraft.metrics import Metric
    from edgecraft.models import ModelHandle, Stage

#: The capability an int8 implementation provides.
INT8 = "quantization.int8"

#: 'hybrid': convolutional parts and attention parts in one model (a CNN backbone with a transformer neck, as in
#: text recognizers): each part gets its own recipe in one quantization.
Recipe = Literal["auto", "cnn", "transformer", "hybrid"]
Mode = Literal["auto", "static", "dynamic", "weight_only"]
CalibrationMethod = Literal["minmax", "entropy", "percentile"]
ActivationType = Literal["auto", "uint8", "int8"]
WeightType = Literal["auto", "int8", "uint8"]
#: One call's inputs: model input name -> array (sample axis first).
Feeds = dict[str, np.ndarray]


@dataclass(frozen=True)
class Int8Request:
    """One quantization step as a backend sees it: the strategy's params, runtime-neutral and frozen.

    ``auto`` values are the backend's to settle (:meth:`Int8Implementation.resolve` at compile time;
    ``mode`` may stay ``auto`` until the recipe is known from the graph at apply time). Backends return
    a completed copy (``dataclasses.replace``), never edit one.
    """

    recipe: Recipe = "auto"
    mode: Mode = "auto"
    per_channel: bool = True
    calibration_method: CalibrationMethod = "minmax"
    #: Kept by ``calibration_method`` 'percentile'.
    percentile: float = 99.999
    calibration_dataset: str | None = None
    calibration_samples: int = 128
    #: SmoothQuant strength for the transformer recipe (None: the backend's measured choice; 0: none).
    smooth_alpha: float | None = None
    activation_type: ActivationType = "auto"
    weight_type: WeightType = "auto"
    #: 7-bit weights (None: the backend decides from the CPU).
    reduce_range: bool | None = None
    #: Glob patterns on the graph's node names, kept in float (a pattern matching nothing is an error).
    keep_float_layers: tuple[str, ...] = ()
    #: Operator types kept in float (ONNX names).
    keep_float_ops: tuple[str, ...] = ()
    #: Whether the step restores layers to float until the accuracy contract holds (settled by the strategy).
    accuracy_aware: bool = False
    #: How many accuracy contracts bound this step on the target (0 when ``accuracy_aware`` is off).
    accuracy_contracts: int = 0

    def summary(self) -> str:
        """The lineage entry of a model this request produced."""
        return f"int8 {self.mode}, {'per-channel' if self.per_channel else 'per-tensor'}"


@dataclass(frozen=True)
class Int8Resolution:
    """What :meth:`Int8Implementation.resolve` returns: the completed request and why."""

    request: Int8Request
    #: Dataset names the step reads on this target (checked by ``ctx.require_dataset``).
    needs_data: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Int8Description:
    """What :meth:`Int8Implementation.describe` returns: the method that runs, in one line, and notes."""

    implementation: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class RecipeFinding:
    """Which recipe suits a model, and what in the graph says so."""

    recipe: Literal["cnn", "transformer", "hybrid"]
    reason: str


@dataclass(frozen=True)
class Int8Run:
    """What an implementation may use while it quantizes, handed by the strategy (no plan, no registry)."""

    #: The step and target, for error messages ("steps[0] (int8) on target 'x'").
    where: str
    #: The step's label, for the lineage of the models built.
    step_label: str
    #: A folder of the step's own, for intermediate files.
    work_dir: Path
    #: Intra-op threads for anything run to calibrate, rank or choose (the plan's latency threads).
    threads: int
    #: Progress line (the strategy prefixes the step).
    status: Callable[[str], None]
    #: Up to ``calibration_samples`` samples of ``calibration_dataset`` bound to the model's inputs, one sample
    #: per feed (loaded on the first call; an error naming the step when the dataset is empty or misshaped).
    calibration: Callable[[], list[Feeds]]

    def lineage(self, model: ModelHandle, request: Int8Request) -> list[dict[str, Any]]:
        """The lineage of a model this step built from ``model``."""
        return [*model.lineage, {"step": self.step_label, "quantization": request.summary()}]


@dataclass(frozen=True)
class AccuracyGoal:
    """What a backend's own accuracy-aware search aims at (see :attr:`Int8Job.accuracy_control`).

    The strategy computes the budget: the tightest accuracy contract's drop, minus what earlier steps
    already spent, re-expressed from the step's float input.
    """

    metric: Metric
    max_drop: float
    relative: bool
    #: The plan's evaluation samples, one per feed, and their labels (None when unlabeled).
    items: list[Feeds]
    labels: np.ndarray | None
    #: Which model output the metric reads.
    output_index: int
    #: Float-restoring iterations the search may spend.
    max_iterations: int
    #: Samples used to rank layers by sensitivity.
    ranking_samples: int
    #: The model input holding the attention mask (``evaluation.mask_input``), for metrics that set ``needs_mask``:
    #: each item carries it, so ``metric.compute(..., mask=...)`` gets the items' values.
    mask_input: str | None = None


@dataclass
class ControlledInt8:
    """What a backend's own accuracy-aware search returns."""

    model: ModelHandle
    #: One entry per search step: ``{"step", "kept_float", "returned_to_float"?, <metric>?}``.
    history: list[dict[str, Any]] = field(default_factory=list)
    #: Accuracy evaluations the search spent (the strategy's final check on the target not included).
    evaluations: int = 1
    #: Layers the search returned to float.
    kept_float: list[str] = field(default_factory=list)
    #: Backend-specific facts for the step's ``accuracy_aware`` details (e.g. the tool's own messages).
    details: dict[str, Any] = field(default_factory=dict)
    #: Set when the search failed and a plain int8 model was kept instead: what happened.
    fallback: str | None = None


@dataclass(frozen=True)
class Int8Evidence:
    """What computes in int8 in a built model, counted by its backend: the strategy's proof the step did something.

    ``int8`` counts what ``what`` names (int8 weight tensors, FakeQuantize ops); zero means the step quantized
    nothing, and ``why_none`` is the backend's reason (no quantizable op, the ops sit in subgraphs its quantizer
    does not enter, ...). ``bytes_before``/``bytes_after``: the model's size before and after, when known.
    """

    int8: int
    what: str
    bytes_before: int | None = None
    bytes_after: int | None = None
    why_none: str | None = None


class Int8Job(ABC):
    """One model being quantized by one step: prepared once, built as often as the strategy asks.

    ``request`` is the request as settled now (``mode`` chosen for the recipe found in the graph);
    ``details`` what preparation found, for the step's report; ``kept_by_params`` the graph's names of
    what ``keep_float_layers``/``keep_float_ops`` keep in float (None when nothing computes in int8, as
    with weight-only compression).
    """

    #: The backend's own accuracy-aware search (its name), or None: the strategy restores layers to float
    #: itself, with :meth:`rank` and :meth:`build`.
    accuracy_control: ClassVar[str | None] = None

    def __init__(self, request: Int8Request, details: dict[str, Any], kept_by_params: list[str] | None) -> None:
        self.request = request
        self.details = details
        self.kept_by_params = kept_by_params

    @abstractmethod
    def build(self, keep_float: Sequence[str] = ()) -> ModelHandle:
        """The int8 model with ``keep_float`` (names from :meth:`rank`) in float as well as ``kept_by_params``."""

    def rank(self, samples: list[Feeds]) -> list[tuple[list[str], float]]:
        """Groups of nodes to return to float together, most sensitive first, each with its score."""
        raise NotImplementedError(f"{type(self).__name__} does not rank layers (accuracy_control: "
                                  f"{self.accuracy_control})")

    def control_accuracy(self, goal: AccuracyGoal) -> ControlledInt8:
        """Quantize with the runtime's own accuracy-aware search (only when ``accuracy_control`` is set)."""
        raise NotImplementedError(f"{type(self).__name__} has no accuracy-aware search of its own")

    @abstractmethod
    def facts(self, model: ModelHandle) -> dict[str, Any]:
        """What the built model holds, for the step's details (sizes, int8 ops): proof that int8 is there."""

    def evidence(self, model: ModelHandle) -> Int8Evidence | None:
        """How much of the built model is int8 (None: this backend cannot tell, and the strategy does not check).

        The strategy fails the step when it is zero or the model grew (issue 26: a Silero VAD "int8" artifact
        had no int8 weight, was larger and slower, and the run only failed contracts)."""
        return None


class Int8Implementation(Implementation):
    """A backend's int8 post-training quantization. Subclass, set ``backend`` and ``stage``, register it."""

    capability: ClassVar[str] = INT8
    #: Where the step works on this backend: ``Stage.ONNX`` (the graph before ``import_onnx``) or
    #: ``Stage.NATIVE`` (the backend's in-memory model).
    stage: ClassVar[Stage]
    #: The backend runs an imported ONNX QuantizeLinear/DequantizeLinear graph on integer kernels with the
    #: scales it carries (what quantization-aware training exports, ``mode: qat``); False refuses QAT there.
    runs_qdq_graphs: ClassVar[bool] = False

    @abstractmethod
    def resolve(self, request: Int8Request, ctx: CompileContext) -> Int8Resolution:
        """Complete ``request`` for ``ctx.target`` or refuse it (``raise ctx.error(...)``, saying why)."""

    @abstractmethod
    def describe(self, request: Int8Request, ctx: CompileContext) -> Int8Description:
        """The method that will run for the completed request (``accuracy_aware`` settled), in one line."""

    def detect_recipe(self, model: ModelHandle) -> RecipeFinding | None:
        """The recipe of a model in the backend's native format (the strategy reads ONNX graphs itself)."""
        return None

    @abstractmethod
    def prepare(self, model: ModelHandle, request: Int8Request, run: Int8Run) -> Int8Job:
        """Everything done once per model (pre-processing, calibration, checks of the keep-float names)."""
