"""ExecuTorch with the XNNPACK delegate on this machine's CPU.

The artifact is a ``.pte`` program lowered from ``torch.export`` (no ONNX anywhere: the target declares
``imports="torch"``, so the builder hands :meth:`ExecutorchBackend.import_torch` the torch model after the
torch-stage steps, int8 by PT2E included) plus ``program.json`` (the model's I/O and what the lowering
delegated). Sessions run it with ``executorch.runtime`` (the Python binding of the C++ runtime a device
embeds), so the numbers are XNNPACK's kernels on this CPU.
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from typing import Any, ClassVar

from edgecraft.backend import Backend, Session, TargetInfo, TargetOptions
from edgecraft.backends.executorch.options import (
    CAPABILITIES,
    INSTALL_HINT,
    META_FILE,
    PROGRAM_FILE,
    TARGET,
    ExecutorchAarch64Options,
    ExecutorchXnnpackOptions,
    executorch_installed,
    missing_fp16,
    require_executorch,
)
from edgecraft.errors import InputError, RuntimeFailure
from edgecraft.modelio import ModelIO
from edgecraft.models import TorchModel

AARCH64 = "executorch-aarch64"  # edgecraft.backends.executorch.board.TARGET (that module imports numpy)


class ExecutorchBackend(Backend):
    name: ClassVar[str] = "executorch"
    summary: ClassVar[str] = "ExecuTorch with the XNNPACK delegate (torch.export → .pte; PT2E int8)"

    def targets(self) -> list[TargetInfo]:
        return [TargetInfo(
            name=TARGET, summary="ExecuTorch + XNNPACK on this machine's CPU; artifact is a .pte built from "
            "torch.export (the plan's model must be a torch model)",
            options_model=ExecutorchXnnpackOptions, capabilities=CAPABILITIES, native_format=None,
            imports="torch"),
            TargetInfo(
                name=AARCH64, summary="The same XNNPACK .pte run by ExecuTorch's C++ runtime on the emulated arm64 "
                "board (QEMU, Cortex-A76; latency labelled emulated): XNNPACK's ARM kernels",
                options_model=ExecutorchAarch64Options, capabilities=CAPABILITIES | {"isa.aarch64"},
                native_format=None, imports="torch", emulated=True)]

    def board_packages(self, device: str) -> dict[str, list[str]]:
        """executorch's aarch64 wheel (its C++ runtime and headers: :mod:`.board`) on the emulated board."""
        from edgecraft.backends.executorch.board import BOARD_REQUIREMENTS, PACKAGE_GROUP
        from edgecraft.boards import DEVICE_NAME

        return {PACKAGE_GROUP: list(BOARD_REQUIREMENTS)} if device == DEVICE_NAME else {}

    def is_emulated(self, target: str, options: TargetOptions) -> bool:
        """executorch-aarch64 on the QEMU board; with device: local, on the real board's node, not emulated."""
        return target == AARCH64 and getattr(options, "device", "emulated") == "emulated"

    def measures_memory_locally(self, target: str, options: TargetOptions) -> bool:
        """executorch-aarch64 runs in the board's runner process (under QEMU): this host's memory is not the
        model's."""
        return target != AARCH64

    def runtime_versions(self) -> dict[str, str]:
        versions = {}
        for dist in ("executorch", "torchao"):
            try:
                versions[dist] = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                versions[dist] = "not installed"
        from edgecraft.backends.executorch.board import ET_BOARD_VERSION

        versions["executorch-aarch64-board"] = ET_BOARD_VERSION  # a new pin rebuilds (and re-measures)
        return versions

    def check_available(self, target: str, options: TargetOptions) -> None:
        if not executorch_installed():
            raise InputError(f"target {target!r} needs ExecuTorch, which is not installed", hint=INSTALL_HINT)
        assert isinstance(options, ExecutorchXnnpackOptions)
        if target == AARCH64:
            from edgecraft.backends.executorch.board import board

            assert isinstance(options, ExecutorchAarch64Options)
            if options.device == "local":
                return  # checked where it runs (the board's node; this compiling host may be x86), fp16 included
            board(options)  # InputError naming `edgecraft device setup arm64-emulated`

    # ------------------------------------------------------------------ build
    def import_onnx(self, onnx_path: Path, target: str, options: TargetOptions, work_dir: Path) -> Any:
        raise InputError(f"target {target!r} builds from torch models (torch.export); an ONNX graph "
                         f"({Path(onnx_path).name}) cannot feed it",
                         hint="use a torch model source, or an ONNX-importing target (ort-cpu, openvino-cpu)")

    def import_torch(self, model: TorchModel, target: str, options: TargetOptions, work_dir: Path) -> Any:
        from edgecraft.backends.executorch.lower import lower

        assert isinstance(options, ExecutorchXnnpackOptions)
        return lower(model, options)

    def save(self, native: Any, target: str, options: TargetOptions, out_dir: Path) -> list[Path]:
        from edgecraft.backends.executorch.lower import LoweredProgram

        if not isinstance(native, LoweredProgram):
            raise RuntimeFailure(f"executorch backend: expected a lowered program to save, got {type(native).__name__}")
        pte, meta = out_dir / PROGRAM_FILE, out_dir / META_FILE
        pte.write_bytes(native.buffer)
        meta.write_text(json.dumps({"io": native.io.to_json(), "facts": native.facts}, indent=2))
        return [pte, meta]

    def artifact_size(self, files: list[Path]) -> int:
        """The ``.pte`` alone: ``program.json`` is edgecraft's bookkeeping, not deployed."""
        return sum(f.stat().st_size for f in files if f.name == PROGRAM_FILE)

    # ------------------------------------------------------------------ run
    def load_runtime(self, target: str, options: TargetOptions) -> None:
        """Import the runtime and create its singleton (the zero of peak-memory measurements)."""
        if target != AARCH64:
            require_executorch().Runtime.get()

    def load(self, artifact_dir: Path, target: str, options: TargetOptions, threads: int) -> Session:
        from edgecraft.backends.executorch.session import ExecutorchSession

        assert isinstance(options, ExecutorchXnnpackOptions)
        pte, meta = artifact_dir / PROGRAM_FILE, artifact_dir / META_FILE
        if not pte.is_file() or not meta.is_file():
            raise InputError(f"artifact {artifact_dir} has no {PROGRAM_FILE} and {META_FILE}")
        n = options.threads or threads
        data = json.loads(meta.read_text())
        if target == AARCH64:
            return _board_session(pte, ModelIO.from_json(data["io"]), data["facts"], options, n)
        runtime = require_executorch()
        set_threads(n)
        method = runtime.Runtime.get().load_program(pte).load_method("forward")
        return ExecutorchSession(method, ModelIO.from_json(data["io"]), data["facts"], n,
                                 importlib.metadata.version("executorch"))


def _board_session(pte: Path, io: ModelIO, facts: dict[str, Any], options: ExecutorchXnnpackOptions,
                   threads: int) -> Session:
    """The program on the board's runner, with what the report says about the board and its CPU."""
    from edgecraft.backends.executorch.board import ET_BOARD_VERSION, BoardRunner, board
    from edgecraft.backends.executorch.session import BoardExecutorchSession
    from edgecraft.boards import decode_hwcaps

    assert isinstance(options, ExecutorchAarch64Options)
    if options.device == "local":  # this process is on the board (a Ray node there): the runner runs natively
        import platform

        from edgecraft.backends.executorch.local import executorch_version, local_runner, require_local_board

        machine = require_local_board()
        identity: dict[str, Any] = {"device": platform.node(), "emulated": False, "machine": machine,
                                    "qemu_cpu": "none (native)", "executorch": executorch_version(),
                                    "note": "measured on the board's own CPU"}
        runner = BoardRunner(None, pte, threads, options.request_timeout, native=local_runner())
    else:
        device = board(options)
        identity = {**device.identity(), "executorch": ET_BOARD_VERSION}
        runner = BoardRunner(device, pte, threads, options.request_timeout)
    identity["cpu_features"] = decode_hwcaps(runner.hwcap, runner.hwcap2)
    why = missing_fp16(identity["cpu_features"]) if options.device == "local" and facts.get("half_inputs") else None
    if why:  # the fp16 step's program on a board read only now (compile time ran on the CLI's host)
        runner.close()
        raise InputError(f"target {AARCH64!r}: the fp16 step's program cannot run in fp16 on this board: {why}; "
                         "edgecraft does not report fp16 where it does not run",
                         hint="place the target on a board whose CPU has fp16 arithmetic (asimdhp/fphp), or drop "
                              "the fp16 step")
    return BoardExecutorchSession(runner, io, facts, identity)


def set_threads(n: int) -> None:
    """Size XNNPACK's threadpool. ExecuTorch has one process-wide pool (``_unsafe_reset_threadpool`` is its
    Python binding's only knob), so the last session loaded decides for all: edgecraft times sessions of one
    target with the same thread count, so that is the count every one of them runs with."""
    from executorch.extension.pybindings import portable_lib

    if portable_lib._threadpool_get_thread_count() != n:
        portable_lib._unsafe_reset_threadpool(n)
