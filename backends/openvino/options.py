"""What the ``openvino-cpu`` backend and its session share: names, the target's options, runtime access.

Its own module so that :mod:`.backend` (which loads sessions) and :mod:`.session` (which builds them)
both import it and never each other.
"""

from __future__ import annotations

from typing import Any, Literal

from edgecraft.backend import TargetOptions
from edgecraft.errors import InputError
from pydantic import Field

TARGET = "openvino-cpu"
NATIVE_FORMAT = "openvino"
IR_XML = "model.xml"
IR_BIN = "model.bin"
INSTALL_HINT = "pip install 'edgecraft[openvino]'  (installs openvino and nncf)"

#: Capability tags strategies test for. ``openvino.nncf``: a NATIVE-stage step receives an
#: ``openvino.Model`` that NNCF can quantize; ``openvino.int8``: int8 IR (FakeQuantize) runs with int8
#: kernels on this CPU plugin; ``precision.bf16``: the bf16 inference precision option exists.
CAPABILITIES = frozenset({"openvino.nncf", "openvino.int8", "openvino.ir", "precision.f32", "precision.bf16"})


class OpenVinoCpuOptions(TargetOptions):
    """Options of the ``openvino-cpu`` target."""

    performance_hint: Literal["latency", "throughput"] = Field(
        "latency", description="OpenVINO PERFORMANCE_HINT: 'latency' (batch-1 response time, the edge "
        "case) or 'throughput' (many parallel requests).")
    streams: int | None = Field(
        None, ge=1,
        description="NUM_STREAMS. Default: 1 with the latency hint, OpenVINO's choice with throughput.")
    threads: int | None = Field(
        None, ge=1,
        description="INFERENCE_NUM_THREADS. Default: the plan's latency.threads, like every backend.")
    cpu_pinning: bool = Field(
        False, description="ENABLE_CPU_PINNING. Off by default: on a shared machine (CI runners, the "
        "project's 2-core hosts) pinned threads wait for busy cores; measured here, an f32 model ran 4.6x "
        "slower pinned than unpinned under load. Turn on for a dedicated device.")
    static_shapes: bool = Field(
        True, description="Compile the model for the concrete shapes of the calls it gets (one compiled model per "
        "distinct set of input shapes, kept for reuse) instead of once with its symbolic axes. The CPU plugin runs "
        "static shapes faster: PP-OCRv4's detector at 1x3x320x320, fp32, took 8.3 ms static against 10.4 ms with "
        "only the batch axis symbolic. Off: one compile with the artifact's declared shapes.")
    inference_precision: Literal["f32", "bf16"] = Field(
        "f32", description="INFERENCE_PRECISION_HINT. f32 by default so baselines are honest: without it "
        "OpenVINO picks bf16 on CPUs with AVX-512 BF16/AMX. bf16 is reported as such in the run report.")


def require_openvino() -> Any:
    try:
        import openvino
    except ImportError as exc:
        raise InputError(f"target {TARGET!r} needs the OpenVINO runtime, which is not installed ({exc})",
                         hint=INSTALL_HINT) from exc
    return openvino


def error_text(exc: BaseException) -> str:
    """The informative line of an OpenVINO error (its first lines are C++ source locations)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(("Exception from ", "Check '"))]
    return (useful or lines or ["(no message)"])[0][:400]


def conversion_cause(exc: BaseException, keep: int = 6) -> str:
    """OpenVINO's own cause of a failed ``convert_model``, not its first line.

    The ONNX frontend's message starts with C++ source locations and a generic "FrontEnd API failed with
    OpConversionFailure", then lists every operation it could not convert with the innermost reason last
    (e.g. ``If-16`` ... "Input order must have shape [n], where n is the rank of arg."), then a summary. That
    last part is what a user needs: the failing operations (the summary line) and, for each, its last ``keep``
    informative lines, cut to a readable length.
    """
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    summary = [ln for ln in lines if ln.startswith("-- Conversion is failed for:")]
    blocks: list[list[str]] = []
    for line in lines:
        if line.startswith("-- ") and line.endswith("with a message:"):
            blocks.append([line[3:-len(" with a message:")]])
        elif line in ("Summary:",) or line.startswith("-- Conversion is failed for:"):
            break
        elif blocks:
            blocks[-1].append(line)
    if not blocks:
        useful = [ln for ln in lines if not ln.startswith(("Exception from ", "Check '"))]
        return " | ".join(useful[-keep:])[:1200] or "(no message)"
    parts = [summary[0][3:] if summary else "conversion failed"]
    for op, *body in blocks:
        tail = [ln for ln in body if not ln.startswith("[ONNX Frontend] Conversion failed for")][-keep:]
        parts.append(f"{op}: " + " | ".join(ln[:300] for ln in tail))
    return "; ".join(parts)[:2000]
