"""The ``openvino-cpu`` target: ONNX → OpenVINO IR (xml + bin) → compiled on the CPU plugin.

Why the defaults are what they are:

* **Inference precision f32.** On a CPU with AVX-512 BF16 (this project's machines) OpenVINO's CPU
  plugin silently runs fp32 models in bf16 unless told otherwise. That makes an "fp32 baseline"
  ~1.8× faster than it really is and hides bf16 rounding in accuracy numbers, so every compression
  gain measured against it would be understated and its accuracy drop misattributed. edgecraft sets
  ``INFERENCE_PRECISION_HINT`` to f32 by default; bf16 is an explicit option and the session reports
  the precision the compiled model actually uses.
* **IR weights kept in fp32.** ``openvino.save_model`` compresses weights to fp16 by default; the
  artifact must hold the model that was measured, so compression to fp16 is off. (Int8 models from
  NNCF keep their int8 weights either way.)
* **Threads not pinned to cores** (``cpu_pinning`` option): pinning pays on a dedicated device but
  makes latency collapse when other processes share the cores, as on CI runners.
* **Latency hint, one stream, the plan's thread count.** The core measures batch-1 latency with a
  fixed number of intra-op threads on every backend, so numbers from ``ort-cpu`` and
  ``openvino-cpu`` are comparable in one report.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from edgecraft.backend import Backend, ExecutedCompute, Session, TargetInfo, TargetOptions
from edgecraft.backends.openvino.options import (
    CAPABILITIES,
    INSTALL_HINT,
    IR_BIN,
    IR_XML,
    NATIVE_FORMAT,
    TARGET,
    OpenVinoCpuOptions,
    conversion_cause,
    error_text,
    require_openvino,
)
from edgecraft.errors import InputError, RuntimeFailure

__all__ = ["IR_BIN", "IR_XML", "NATIVE_FORMAT", "TARGET", "OpenVinoBackend", "OpenVinoCpuOptions", "error_text"]


def _input_shapes(onnx_path: Path) -> str:
    """The graph's input shapes as the frontend saw them (``x: [batch, 3, 320, 320]``), for error messages."""
    try:
        import onnx

        graph = onnx.load(str(onnx_path), load_external_data=False).graph
        inits = {i.name for i in graph.initializer}

        def dims(value_info: Any) -> str:
            return ", ".join(str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?")
                             for d in value_info.type.tensor_type.shape.dim)

        return ", ".join(f"{i.name}: [{dims(i)}]" for i in graph.input if i.name not in inits)
    except Exception as exc:  # the message must not fail while reporting another failure
        return f"unreadable ({type(exc).__name__})"


class OpenVinoBackend(Backend):
    """OpenVINO Runtime on the local CPU."""

    name: ClassVar[str] = "openvino"
    refusals: ClassVar[dict[str, str]] = {"quantization.fp16": (
        "openvino-cpu runs f32 or bf16 (options.inference_precision). OpenVINO's CPU plugin computes f16 only on "
        "CPUs that list FP16 in OPTIMIZATION_CAPABILITIES (ARM, AVX512-FP16/AMX-FP16); on the others (this "
        "project's x86 machines) INFERENCE_PRECISION_HINT f16 compiles the model in bf16 (its runtime model's "
        "runtimePrecision says bf16; OpenVINO 2026.4), so edgecraft does not build or report f16 on this target")}
    summary: ClassVar[str] = "OpenVINO Runtime on the local CPU (IR artifact, NNCF int8, f32/bf16 precision)"

    def targets(self) -> list[TargetInfo]:
        return [TargetInfo(
            name=TARGET,
            summary="Intel OpenVINO CPU plugin; artifact is OpenVINO IR (model.xml + model.bin)",
            options_model=OpenVinoCpuOptions,
            capabilities=CAPABILITIES,
            native_format=NATIVE_FORMAT,
            import_plan_shapes=True,  # static shapes: fp32 8.3 vs 10.4 ms on PP-OCRv4 det (plan_shapes module)
        )]

    def runtime_versions(self) -> dict[str, str]:
        versions = {}
        for dist in ("openvino", "nncf"):
            try:
                versions[dist] = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                versions[dist] = "not installed"
        return versions

    def check_available(self, target: str, options: TargetOptions) -> None:
        if importlib.util.find_spec("openvino") is None:
            raise InputError(f"target {target!r} needs the OpenVINO runtime, which is not installed",
                             hint=INSTALL_HINT)

    # ------------------------------------------------------------------ build
    def import_onnx(self, onnx_path: Path, target: str, options: TargetOptions, work_dir: Path) -> Any:
        ov = require_openvino()
        try:
            # The graph has the plan's fixed dimensions written into its inputs (TargetInfo.import_plan_shapes):
            # OpenVINO's ONNX frontend converts with them, as it would with convert_model(input=...).
            return ov.convert_model(str(onnx_path))
        except Exception as exc:
            shapes = _input_shapes(onnx_path)
            raise InputError(
                f"OpenVINO {ov.__version__.split('-')[0]} could not convert the ONNX model {onnx_path.name} "
                f"(inputs {shapes}): {type(exc).__name__}: {conversion_cause(exc)}",
                hint="this is OpenVINO's ONNX frontend failing on the operations named above, not necessarily a "
                "bad file (check it with onnx.checker, or run the plan on ort-cpu). If an input dimension is still "
                "symbolic, fixing it in the plan (model.inputs.NAME.shape) may let it convert; otherwise leave "
                f"{TARGET!r} out of this plan's targets") from exc

    def save(self, native: Any, target: str, options: TargetOptions, out_dir: Path) -> list[Path]:
        ov = require_openvino()
        if not isinstance(native, ov.Model):
            raise RuntimeFailure("openvino backend: expected an openvino.Model to save, "
                                 f"got {type(native).__name__}")
        xml = out_dir / IR_XML
        # compress_to_fp16=False: the artifact is the model that was measured (see module docstring).
        ov.save_model(native, str(xml), compress_to_fp16=False)
        return [xml, out_dir / IR_BIN]

    # ------------------------------------------------------------------ run
    def load_runtime(self, target: str, options: TargetOptions) -> None:
        """Create a Core and load its CPU plugin (the zero of peak-memory measurements)."""
        ov = require_openvino()
        ov.Core().get_property("CPU", "FULL_DEVICE_NAME")

    def executed_compute(self, artifact_dir: Path, target: str, options: TargetOptions, threads: int,
                         feeds: Mapping[str, np.ndarray],
                         input_shapes: Mapping[str, tuple[int, ...]] | None) -> ExecutedCompute:
        """The CPU plugin's runtime model for the IR compiled as :meth:`load` compiles it (see :mod:`.executed`).
        An IR with dynamic axes is reshaped to the batch-1 input shapes first (its layers have no static shape
        otherwise), and the notes say so."""
        from edgecraft.backends.openvino.executed import runtime_compute
        from edgecraft.backends.openvino.session import compile_ir, read_ir

        assert isinstance(options, OpenVinoCpuOptions)
        model = read_ir(artifact_dir / IR_XML)
        reshaped = False
        if input_shapes and any(port.get_partial_shape().is_dynamic for port in model.inputs):
            model.reshape({port.get_any_name(): list(input_shapes[port.get_any_name()]) for port in model.inputs
                           if port.get_any_name() in input_shapes})
            reshaped = True
        session = compile_ir(model, options, threads)
        try:
            count = runtime_compute(session.compiled)
        finally:
            session.close()
        if reshaped:
            count.notes.append("the IR keeps dynamic input axes: counted after reshaping it to the batch-1 shapes")
        return count

    def load(self, artifact_dir: Path, target: str, options: TargetOptions, threads: int) -> Session:
        from edgecraft.backends.openvino.session import compile_ir

        assert isinstance(options, OpenVinoCpuOptions)
        return compile_ir(artifact_dir / IR_XML, options, threads)
