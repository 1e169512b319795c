"""What a backend's fp16 implementation provides so that the ``quantization`` step can run in half precision.

Reduced float precision is a *compression step* of the plan (``quantization`` with ``mode: fp16``), not a target
option: the baseline stays the fp32 model on the same target, so accuracy and latency contracts judge what fp16
costs (with fp16 as a target option, the baseline was fp16 too and fp16's own loss was never judged). Like int8
(:mod:`edgecraft.quantize`), the algorithm is the strategy's and the runtime part is the backend's: a backend
subclasses :class:`Fp16Implementation`, sets ``backend`` and ``stage``, and registers it from
``edgecraft_register_implementations``. A target whose runtime does not compute in fp16 refuses the step at
compile time, in :meth:`Fp16Implementation.resolve` (the target's CPU, read from the board) or through
:attr:`edgecraft.Backend.refusals` (capability :data:`FP16`), never by building a graph that runs in fp32.

Nothing here imports a runtime.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from edgecraft.implementations import Implementation

if TYPE_CHECKING:
    from edgecraft.backend import TargetOptions
    from edgecraft.context import CompileContext
    from edgecraft.models import ModelHandle, Stage

#: The capability an fp16 implementation provides.
FP16 = "quantization.fp16"


@dataclass(frozen=True)
class Fp16Request:
    """One fp16 step as a backend sees it (runtime-neutral, frozen)."""

    #: Layers kept in float32: glob patterns on the graph's node names (ONNX) or module names (torch).
    keep_float_layers: tuple[str, ...] = ()
    #: Operator types kept in float32 (ONNX names).
    keep_float_ops: tuple[str, ...] = ()
    #: The model is int8 (the quantization step's ``float_precision: fp16``): convert only the layers it left in
    #: float, so they compute in fp16 instead of fp32 (int8 with fp16 fallback layers).
    int8_fallback: bool = False


@dataclass(frozen=True)
class Fp16Resolution:
    """What :meth:`Fp16Implementation.resolve` returns: the method that runs, in one line, and notes."""

    implementation: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Fp16Run:
    """What an implementation may use while it converts, handed by the strategy."""

    #: The step and target, for error messages ("steps[0] (quantization) on target 'x'").
    where: str
    step_label: str
    #: The target's name and validated options (e.g. the portable optimization level its artifact is saved at).
    target: str
    options: TargetOptions
    #: A folder of the step's own.
    work_dir: Path


class Fp16Implementation(Implementation):
    """A backend's fp16 conversion. Subclass, set ``backend`` and ``stage``, register it."""

    capability: ClassVar[str] = FP16
    #: Where the step works on this backend (``Stage.TORCH``: the torch module; ``Stage.ONNX``: the graph).
    stage: ClassVar[Stage]

    @abstractmethod
    def resolve(self, request: Fp16Request, ctx: CompileContext) -> Fp16Resolution:
        """Accept the step for ``ctx.target`` or refuse it with ``ctx.error``, naming why the runtime would not
        compute in fp16 there (the CPU has no fp16 arithmetic, the runtime has no fp16 kernels, ...)."""

    @abstractmethod
    def convert(self, model: ModelHandle, request: Fp16Request, run: Fp16Run) -> tuple[ModelHandle, dict[str, Any]]:
        """The model in half precision (float32 inputs and outputs), and what the conversion did (for the report)."""


#: What to write instead of the removed ``precision: fp16`` target option (one message for every target that had it).
PRECISION_OPTION_MOVED = (
    "the target option 'precision' was removed: reduced precision is a compression step now, so the baseline stays "
    "fp32 on the same target and contracts judge what fp16 costs; remove options.precision and add the step "
    "{strategy: quantization, params: {mode: fp16}} to the plan's steps (without steps the target runs fp32)")


def refuse_precision_option(data: Any) -> Any:
    """A ``mode="before"`` validator body for target options that once had ``precision``: a ValueError saying what to
    write instead (an alias moving it into a step would make the baseline fp16 too, the flaw the step fixes)."""
    if isinstance(data, dict) and "precision" in data:
        raise ValueError(PRECISION_OPTION_MOVED)
    return data
