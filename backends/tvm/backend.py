"""The TVM backend: targets ``tvm-aarch64`` (cross-compiled, run over TVM RPC) and ``tvm-llvm-host``.

Build: ONNX → TVM Relax (``tvm.relax.frontend.onnx.from_onnx``) → optional MetaSchedule tuning →
``tvm.compile`` → ``export_library`` (``aarch64-linux-gnu-g++`` for aarch64; the artifact is checked to
be an aarch64 ELF). Run: the Relax VM on the host, or on an aarch64 device through TVM RPC — by default
the emulated device edgecraft prepares (QEMU user-mode), or a real board / a tracker's farm of boards.

Capabilities: none for int8. TVM 0.27 imports ONNX QDQ graphs but computes them in fp32 and has no
QOperator ops, so claiming int8 would report a speed-up that does not exist (the quantization plugin
rejects quantization on these targets at compile time).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from edgecraft.backend import Backend, Session, TargetInfo, TargetOptions
from edgecraft.backends.tvm.options import AArch64Options, HostOptions
from edgecraft.backends.tvm.toolchain import (
    CROSS_CXX,
    QEMU,
    TUNING_FFI_VERSION,
    dist_version,
    require_tool,
    require_tvm,
    tool_version,
)
from edgecraft.errors import InputError, RuntimeFailure

AARCH64 = "tvm-aarch64"
HOST = "tvm-llvm-host"
NATIVE_FORMAT = "tvm.relax"
CAPABILITIES = frozenset({"tvm.relax", "precision.f32"})


class TvmBackend(Backend):
    """Apache TVM (Relax): aarch64 boards through RPC, and the host CPU."""

    name: ClassVar[str] = "tvm"
    summary: ClassVar[str] = ("Apache TVM Relax: cross-compiled aarch64 (emulated device or boards over TVM RPC) "
                              "and the host CPU; optional MetaSchedule tuning")
    refusals: ClassVar[dict[str, str]] = {"quantization.int8": (
        "as of TVM 0.27 an ONNX QDQ graph imports but computes in fp32 (no int8 kernel runs, so nothing would be "
        "faster), and QOperator ops (QLinearConv, QGemm, ConvInteger) are not implemented in its ONNX frontend; "
        "edgecraft does not report int8 where none runs"),
        "quantization.fp16": (
            "edgecraft's TVM targets compile the imported Relax module as it is, in float32 (no float16 conversion "
            "of the module and no fp16 schedules are built, whatever options.mattr says), so nothing would compute "
            "in fp16 there; edgecraft does not report fp16 where it does not run")}

    def targets(self) -> list[TargetInfo]:
        return [
            TargetInfo(name=AARCH64, options_model=AArch64Options, capabilities=CAPABILITIES,
                       native_format=NATIVE_FORMAT, emulated=True,
                       summary="aarch64-linux-gnu (NEON) library, cross-linked; runs on the emulated arm64 "
                       "device by default (latency labelled emulated), or a board via device: rpc/tracker"),
            TargetInfo(name=HOST, options_model=HostOptions, capabilities=CAPABILITIES,
                       native_format=NATIVE_FORMAT,
                       summary="LLVM for the host CPU (comparison with ort-cpu; tuning optional)"),
        ]

    def is_emulated(self, target: str, options: TargetOptions) -> bool:
        """The QEMU device, and boards the options say are emulated (served by `edgecraft device serve`)."""
        return target == AARCH64 and isinstance(options, AArch64Options) and (
            options.device == "emulated" or options.board_emulated)

    def measures_memory_locally(self, target: str, options: TargetOptions) -> bool:
        """aarch64 sessions run on the emulated device or a board over RPC, not in this process: their memory is
        not this host's (edgecraft reports it as not measured there). The host target runs in-process."""
        return target != AARCH64

    def load_runtime(self, target: str, options: TargetOptions) -> None:
        """Import TVM and open the host CPU device (the zero of peak-memory measurements)."""
        import tvm

        tvm.cpu(0).exist  # noqa: B018 - touching the device initialises the runtime

    def runtime_versions(self) -> dict[str, str]:
        return {"apache-tvm": dist_version("apache-tvm"), "apache-tvm-ffi": dist_version("apache-tvm-ffi"),
                CROSS_CXX: tool_version(CROSS_CXX)}

    def check_available(self, target: str, options: TargetOptions) -> None:
        require_tvm(target)
        assert isinstance(options, AArch64Options | HostOptions)
        if target == AARCH64:
            assert isinstance(options, AArch64Options)
            require_tool(CROSS_CXX, f"target {target!r} (linking the aarch64 library)")
            if options.device == "emulated":
                require_tool(QEMU, f"target {target!r} on the emulated device")
                from edgecraft.backends.tvm.device import EmulatedDevice

                EmulatedDevice.at(options.device_cache_dir).manifest()  # InputError: run `device setup`
        from edgecraft.backends.tvm.compile import check_cpu

        check_cpu(target, options)
        if options.tuning is not None:
            self._check_tuning(target, options)

    @staticmethod
    def _check_tuning(target: str, options: AArch64Options | HostOptions) -> None:
        import importlib.util

        if target == AARCH64 and isinstance(options, AArch64Options) and options.device != "tracker":
            raise InputError("options.tuning on tvm-aarch64 needs device: tracker: MetaSchedule's RPC runner "
                             "times candidates on boards it asks a TVM RPC tracker for",
                             hint="run `python -m tvm.exec.rpc_tracker --host HOST --port 9190`, register the "
                                  "board with `rpc_server --tracker HOST:9190 --key KEY`, and set device: "
                                  "tracker, tracker_host, tracker_key")
        ffi = dist_version("apache-tvm-ffi")
        if ffi != TUNING_FFI_VERSION:
            raise InputError(f"options.tuning needs apache-tvm-ffi=={TUNING_FFI_VERSION} (installed: {ffi}; "
                             "0.1.15.x segfaults as MetaSchedule tuning starts)",
                             hint=f"pip install apache-tvm-ffi=={TUNING_FFI_VERSION}")
        if importlib.util.find_spec("xgboost") is None:
            raise InputError("options.tuning needs xgboost (MetaSchedule's cost model)",
                             hint="pip install xgboost-cpu")

    # ------------------------------------------------------------------ build
    def import_onnx(self, onnx_path: Path, target: str, options: TargetOptions, work_dir: Path) -> Any:
        require_tvm(target)
        from edgecraft.backends.tvm.compile import import_onnx

        return import_onnx(onnx_path)

    def save(self, native: Any, target: str, options: TargetOptions, out_dir: Path) -> list[Path]:
        from edgecraft.backends.tvm.compile import TvmModel, build_library

        if not isinstance(native, TvmModel):
            raise RuntimeFailure(f"tvm backend: expected the model import_onnx returned, got {type(native).__name__}")
        assert isinstance(options, AArch64Options | HostOptions)
        tuner = None
        if options.tuning is not None:
            from edgecraft.backends.tvm.tuning import tuned_pipeline

            boards = options if isinstance(options, AArch64Options) else None
            tuner = tuned_pipeline(native, options.tuning, boards)
        return build_library(native, target, options, out_dir, tuning_db=tuner)

    def artifact_size(self, files: list[Path]) -> int:
        """The deployed library only (metadata and the host-check probe do not ship to the board)."""
        from edgecraft.backends.tvm.compile import LIBRARY

        return sum(f.stat().st_size for f in files if f.name == LIBRARY)

    # ------------------------------------------------------------------ run
    def load(self, artifact_dir: Path, target: str, options: TargetOptions, threads: int) -> Session:
        require_tvm(target)
        from edgecraft.backends.tvm import session

        if target == AARCH64:
            assert isinstance(options, AArch64Options)
            return session.load_remote(artifact_dir, options, threads)
        assert isinstance(options, HostOptions)
        return session.load_host(artifact_dir, options, threads)
