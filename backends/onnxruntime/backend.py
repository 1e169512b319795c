"""ONNX Runtime on the CPU.

The artifact is the graph after ONNX Runtime's own *extended* optimizations (constant folding,
Conv+BN/activation fusion, QDQ fusions), saved once at build time so the shipped file is what was
measured. The *all* level adds layout transforms specific to this machine's CPU (NCHWc blocking),
which would make the file non-portable; those are applied at session creation instead, where they
always match the CPU the model runs on.

``ort-aarch64`` (:mod:`.aarch64`) runs the same kind of artifact, saved at a portable level, on an ARM board.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
from edgecraft.backend import Backend, ExecutedCompute, Session, TargetInfo, TargetOptions
from edgecraft.backends.onnxruntime.aarch64 import (
    BOARD_REQUIREMENTS,
    ORT_BOARD_VERSION,
    PACKAGE_GROUP,
    OrtAarch64Options,
)
from edgecraft.backends.onnxruntime.aarch64 import TARGET as AARCH64
from edgecraft.errors import InputError
from pydantic import Field

ARTIFACT_FILE = "model.onnx"


class OrtCpuOptions(TargetOptions):
    """Options of the ``ort-cpu`` target."""

    saved_optimization: Literal["disable", "basic", "extended"] = Field(
        "extended", description="Graph optimizations applied to the saved artifact (portable levels only).")
    runtime_optimization: Literal["disable", "basic", "extended", "all"] = Field(
        "all", description="Graph optimizations applied when the session is created on the running CPU.")
    intra_op_threads: int | None = Field(None, ge=1, description="Overrides the plan's latency.threads.")
    inter_op_threads: int = Field(1, ge=1)
    execution_mode: Literal["sequential", "parallel"] = "sequential"
    allow_spinning: bool = Field(
        False, description="Let intra-op threads spin-wait after each call. ORT's default is on: a little "
        "faster alone, but the spinning threads steal the cores from the next model timed interleaved, "
        "which makes baseline/candidate comparisons noise on a shared machine (identical models measured "
        "-24..+31% apart with 2 threads; -2..+2% with spinning off).")


def _level(name: str) -> Any:
    import onnxruntime as ort

    return {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[name]


class OrtSession(Session):
    def __init__(self, session: Any, options: OrtCpuOptions, threads: int, path: Path | None = None) -> None:
        self._session = session
        self._path = path
        self._names = [i.name for i in session.get_inputs()]
        self._output_names = [o.name for o in session.get_outputs()]
        self._threads = threads
        self._options = options

    @property
    def input_names(self) -> list[str]:
        return self._names

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return self._session.run(self._output_names, dict(feeds))

    def describe(self) -> dict[str, Any]:
        import platform

        import onnxruntime as ort

        facts = {"runtime": f"onnxruntime {ort.__version__}", "device": f"CPU ({platform.machine()})",
                 "providers": self._session.get_providers(), "threads": self._threads,
                 "optimization": self._options.runtime_optimization}
        if self._path is not None:
            from edgecraft.backends.onnxruntime.int8_layers import artifact_int8_layers

            so = ort.SessionOptions()
            so.graph_optimization_level = _level(self._options.runtime_optimization)
            so.log_severity_level = 3
            try:
                facts["int8_layers"] = artifact_int8_layers(self._path, self._options.runtime_optimization, so)
            except Exception as exc:  # a description must not fail a measured run
                facts["int8_layers"] = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        return facts


def _fp16_for_the_board(path: Path, target: str) -> bool:
    """An fp16 graph for ort-aarch64 is saved as the fp16 step left it (optimized in fp32 before its conversion):
    this x86 ONNX Runtime would put Casts to float32 in front of every fp16 op while optimizing it."""
    from edgecraft.backends.onnxruntime.fp16 import holds_fp16

    return target == AARCH64 and holds_fp16(Path(path))


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    summary = "ONNX Runtime, CPU execution provider: this host, and aarch64 boards (the emulated one)"

    def targets(self) -> list[TargetInfo]:
        return [TargetInfo(
            name="ort-cpu", summary="ONNX Runtime on this machine's CPU", options_model=OrtCpuOptions,
            # QDQ int8 graphs and dynamic (MatMulInteger) quantization both have CPU kernels here.
            capabilities=frozenset({"onnx.graph", "onnx.int8.qdq", "onnx.int8.dynamic", "onnx.int8.qoperator"}),
            native_format="onnx"),
            TargetInfo(
                name=AARCH64, options_model=OrtAarch64Options, emulated=True, native_format="onnx",
                summary="ONNX Runtime's aarch64 build on the emulated arm64 board (QEMU; latency labelled "
                "emulated): ARM int8 kernels, signed int8 activations; dynamic int8 convs refused (no ARM kernel)",
                # isa.aarch64: the int8 recipe picks S8S8 and refuses ConvInteger (.quantize).
                capabilities=frozenset({"onnx.graph", "onnx.int8.qdq", "onnx.int8.dynamic", "onnx.int8.qoperator",
                                        "isa.aarch64"}))]

    def board_packages(self, device: str) -> dict[str, list[str]]:
        """onnxruntime's aarch64 wheel (pinned: see :mod:`.aarch64`) on the emulated board."""
        from edgecraft.boards import DEVICE_NAME

        return {PACKAGE_GROUP: list(BOARD_REQUIREMENTS)} if device == DEVICE_NAME else {}

    def is_emulated(self, target: str, options: TargetOptions) -> bool:
        """ort-aarch64 on the QEMU board; with device: local only when this process itself runs emulated (a Ray
        node inside the emulated board), not on a real board."""
        if target != AARCH64:
            return False
        if getattr(options, "device", "emulated") == "emulated":
            return True
        from edgecraft.cpu import user_mode_emulation

        return user_mode_emulation() is not None

    def measures_memory_locally(self, target: str, options: TargetOptions) -> bool:
        """ort-aarch64 on the emulated board runs in the board's process (under QEMU): this host's memory is not
        the model's. With device: local the model is in this process, on the board."""
        return not (target == AARCH64 and getattr(options, "device", "emulated") == "emulated")

    def runtime_versions(self) -> dict[str, str]:
        from importlib.metadata import version

        # The board's pinned wheel too: a new pin must rebuild (and re-measure) ort-aarch64 artifacts.
        return {"onnxruntime": version("onnxruntime"), "onnxruntime-aarch64-board": ORT_BOARD_VERSION}

    def check_available(self, target: str, options: TargetOptions) -> None:
        if target == AARCH64:
            from edgecraft.backends.onnxruntime.aarch64 import board

            assert isinstance(options, OrtAarch64Options)
            if options.device == "emulated":
                board(options)  # InputError naming `edgecraft device setup arm64-emulated`
            # device: local is checked where it runs (the board's node): this compiling host may be x86.
        try:
            import onnxruntime  # noqa: F401
        except ImportError as exc:
            raise InputError("target ort-cpu needs onnxruntime, which is not importable",
                             hint="pip install onnxruntime") from exc

    def import_onnx(self, onnx_path: Path, target: str, options: TargetOptions, work_dir: Path) -> Path:
        # ONNX Runtime's "native" model is the ONNX file itself.
        return Path(onnx_path)

    def save(self, native: Any, target: str, options: TargetOptions, out_dir: Path) -> list[Path]:
        import onnxruntime as ort

        assert isinstance(options, OrtCpuOptions | OrtAarch64Options)
        out = out_dir / ARTIFACT_FILE
        if options.saved_optimization == "disable" or _fp16_for_the_board(native, target):
            shutil.copyfile(native, out)
        else:
            so = ort.SessionOptions()
            so.graph_optimization_level = _level(options.saved_optimization)
            so.optimized_model_filepath = str(out)
            ort.InferenceSession(str(native), so, providers=["CPUExecutionProvider"])
        return [out]

    def load_runtime(self, target: str, options: TargetOptions) -> None:
        """Import ONNX Runtime and create its environment (the zero of peak-memory measurements)."""
        import onnxruntime as ort

        ort.get_available_providers()
        ort.SessionOptions()

    def executed_compute(self, artifact_dir: Path, target: str, options: TargetOptions, threads: int,
                         feeds: Mapping[str, np.ndarray],
                         input_shapes: Mapping[str, tuple[int, ...]] | None) -> ExecutedCompute | None:
        """The optimized graph the session builds at ``runtime_optimization`` (see :mod:`.executed`). None on
        ort-aarch64: the board's ONNX Runtime (another version, ARM kernels) builds its own graph there."""
        if target == AARCH64:
            return None
        from edgecraft.backends.onnxruntime.executed import executed_compute

        assert isinstance(options, OrtCpuOptions)
        path = artifact_dir / ARTIFACT_FILE
        level = options.runtime_optimization
        return executed_compute(path, _level(level), level, options.intra_op_threads or threads,
                                input_shapes, feeds)

    def load(self, artifact_dir: Path, target: str, options: TargetOptions, threads: int) -> Session:
        import onnxruntime as ort

        path = artifact_dir / ARTIFACT_FILE
        if not path.is_file():
            raise InputError(f"artifact {artifact_dir} has no {ARTIFACT_FILE}")
        if target == AARCH64:
            from edgecraft.backends.onnxruntime.aarch64 import BoardSession, LocalBoardSession

            assert isinstance(options, OrtAarch64Options)
            kind = LocalBoardSession if options.device == "local" else BoardSession
            return kind(path, options, options.intra_op_threads or threads)
        assert isinstance(options, OrtCpuOptions)
        so = ort.SessionOptions()
        so.graph_optimization_level = _level(options.runtime_optimization)
        n = options.intra_op_threads or threads
        so.intra_op_num_threads = n
        so.inter_op_num_threads = options.inter_op_threads
        so.execution_mode = (ort.ExecutionMode.ORT_SEQUENTIAL if options.execution_mode == "sequential"
                             else ort.ExecutionMode.ORT_PARALLEL)
        so.log_severity_level = 3
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if options.allow_spinning else "0")
        return OrtSession(ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]), options, n, path)
