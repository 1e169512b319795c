"""What the ``executorch-xnnpack`` backend, its lowering, session and int8 implementation share.

Its own module so that :mod:`.backend`, :mod:`.session` and :mod:`.quantize` import it and never each other.
"""

from __future__ import annotations

import importlib.util
import platform
from pathlib import Path
from typing import Any, Literal

from edgecraft.backend import TargetOptions
from edgecraft.cpu import cpu_flags
from edgecraft.errors import InputError
from edgecraft.precision import refuse_precision_option
from pydantic import Field, model_validator

TARGET = "executorch-xnnpack"
NATIVE_FORMAT = "executorch"
PROGRAM_FILE = "model.pte"
META_FILE = "program.json"
INSTALL_HINT = "pip install 'edgecraft[executorch]'  (installs executorch==1.5.1 and torchao)"
#: The batch the program is exported with: ExecuTorch plans memory for fixed shapes, and XNNPACK's dynamic
#: batch is bounded by guesses torch.export makes (a Conv+Linear net got an upper bound of 15, measured with
#: executorch 1.5.1). Edge devices run one sample at a time; a larger batch runs as that many calls.
EXPORT_BATCH = 1

#: ``executorch.xnnpack``: an XNNPACK-lowered ``.pte``; ``executorch.int8.pt2e``: int8 by PT2E with the XNNPACK
#: quantizer (a torch-stage step); ``torch.export``: the artifact is built from the torch model, never ONNX.
CAPABILITIES = frozenset({"executorch.xnnpack", "executorch.int8.pt2e", "torch.export", "precision.f32"})

#: CPU flags meaning fp16 *arithmetic* (not just F16C conversions): x86 AVX512-FP16, ARM FEAT_FP16.
FP16_FLAGS = frozenset({"avx512_fp16", "asimdhp", "fphp"})


class ExecutorchXnnpackOptions(TargetOptions):
    """Options of the ``executorch-xnnpack`` target."""

    threads: int | None = Field(
        None, ge=1, description="XNNPACK threadpool size. Default: the plan's latency.threads, like every backend.")

    @model_validator(mode="before")
    @classmethod
    def _no_precision(cls, data: Any) -> Any:
        """fp16 is the quantization step's ``mode: fp16`` (:mod:`.fp16`); the old option is refused saying so."""
        return refuse_precision_option(data)


class ExecutorchAarch64Options(ExecutorchXnnpackOptions):
    """Options of the ``executorch-aarch64`` target: the host target's, and where the board is."""

    device_cache_dir: Path | None = Field(None, description="Where the prepared emulated board lives "
                                          "(default $EDGECRAFT_DEVICE_CACHE or ~/.cache/edgecraft/devices).")
    request_timeout: float = Field(600, gt=0, description="Seconds one request to the board may take before "
                                   "the runner is stopped.")
    device: Literal["emulated", "local"] = Field(
        "emulated", description="emulated: the QEMU board this host prepared (latency labelled emulated). local: "
        "this process is on a real ARM board (the target placed on a Ray node started there, docs/arm-boards.md): "
        "the runner is compiled there with its C++ compiler against its executorch wheel and runs natively; "
        "refused at run time on any other CPU.")


def require_executorch() -> Any:
    """The ``executorch.runtime`` module, or an InputError with the install hint."""
    try:
        import executorch.runtime as runtime
    except ImportError as exc:
        raise InputError(f"target {TARGET!r} needs ExecuTorch, which is not importable ({exc})",
                         hint=INSTALL_HINT) from exc
    return runtime


def executorch_installed() -> bool:
    return importlib.util.find_spec("executorch") is not None


def fp16_arithmetic() -> list[str]:
    """The CPU's fp16-arithmetic flags (empty: fp16 would be emulated, so it is refused)."""
    return sorted(cpu_flags() & FP16_FLAGS)


def missing_fp16(board_features: dict[str, bool] | None = None) -> str | None:
    """Why XNNPACK would not compute in fp16 on the target's CPU (None: it would). ``board_features``: the aarch64
    board's (read on the board), for ``executorch-aarch64``; else this host's CPU."""
    if board_features is not None:
        from edgecraft.boards import has_arm_fp16

        if has_arm_fp16(board_features):
            return None
        return ("the board's CPU has no fp16 arithmetic (neither asimdhp nor fphp in its features), so XNNPACK "
                "would not compute in fp16 there")
    if fp16_arithmetic():
        return None
    return (f"this CPU ({platform.machine()}) has no fp16 arithmetic (none of the flags "
            + ", ".join(sorted(FP16_FLAGS)) + "), so XNNPACK would not compute in fp16 here")
