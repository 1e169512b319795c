"""``ort-aarch64``: ONNX Runtime's aarch64 build on an ARM board, the emulated one by default.

The artifact is the ONNX file saved at a *portable* optimization level (basic, or none): ONNX Runtime's
extended/all levels fuse and lay out for the CPU that saves the file, which would be the x86 host, not the
board. The board's session optimizes for its own CPU when it loads the file.

The session is :mod:`.board_server` running in the board's Python with onnxruntime's aarch64 wheel,
driven over a pipe: accuracy comes from ONNX Runtime's ARM kernels, latency from the board's clock (on the
emulated board it is QEMU's, labelled emulated: ``is_emulated`` is true, as for ``tvm-aarch64``). The
executed graph is saved on the board (``SessionOptions.optimized_model_filepath``) and read back here, so
the report names the integer kernels that ran (QLinearConv, QGemm, MatMulInteger...).

Which onnxruntime: :data:`ORT_BOARD_VERSION`. Under this QEMU (Debian's qemu-user 7.2) 1.32.0 segfaults at
import; 1.20.1, 1.23.2 and 1.27.0 import and run (FIELD-NOTES, 2026-12-04). 1.27.0 is the newest of those,
so the closest to the host's ORT and to the opsets the host's exporters write.
"""

from __future__ import annotations

import collections
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
from edgecraft.backend import Session, TargetOptions
from edgecraft.backends.onnxruntime import board_server as wire
from edgecraft.errors import InputError, RuntimeFailure
from edgecraft.precision import refuse_precision_option
from pydantic import Field, model_validator

TARGET = "ort-aarch64"
ORT_BOARD_VERSION = "1.27.0"
#: The wheels the board needs (installed without dependency resolution: onnxruntime imports only numpy).
BOARD_REQUIREMENTS = [f"onnxruntime=={ORT_BOARD_VERSION}", "numpy==2.4.6"]
PACKAGE_GROUP = "onnxruntime"
#: Ops that compute on integers (the Q/DQ pairs around them only convert).
INTEGER_OPS = frozenset({"QLinearConv", "QLinearMatMul", "QGemm", "MatMulInteger", "ConvInteger",
                         "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QAttention", "QLinearAdd", "QLinearMul",
                         "QLinearAveragePool", "QLinearGlobalAveragePool", "QLinearConcat", "QLinearSigmoid",
                         "QLinearLeakyRelu", "QLinearSoftmax", "DynamicQuantizeLSTM", "QEmbedLayerNormalization"})


class OrtAarch64Options(TargetOptions):
    """Options of the ``ort-aarch64`` target."""

    saved_optimization: Literal["disable", "basic"] = Field(
        "basic", description="Optimizations applied to the saved artifact: only levels that do not depend on the "
        "saving CPU (the host is x86; the board optimizes for itself at load).")
    runtime_optimization: Literal["disable", "basic", "extended", "all"] = Field(
        "all", description="Optimizations the board's session applies for its own CPU.")
    intra_op_threads: int | None = Field(None, ge=1, description="Overrides the plan's latency.threads.")
    device_cache_dir: Path | None = Field(None, description="Where the prepared emulated board lives "
                                          "(default $EDGECRAFT_DEVICE_CACHE or ~/.cache/edgecraft/devices).")
    device: Literal["emulated", "local"] = Field(
        "emulated", description="emulated: the QEMU board this host prepared (latency labelled emulated). local: "
        "this process is on a real ARM board, i.e. the target is placed on a Ray node started on the board "
        "(docs/arm-boards.md); refused at run time on any other CPU.")
    request_timeout: float = Field(600, gt=0, description="Seconds one request to the board may take before "
                                   "the board server is stopped (emulated int8 transformers are slow).")

    @model_validator(mode="before")
    @classmethod
    def _no_precision(cls, data: Any) -> Any:
        """fp16 is the quantization step's ``mode: fp16`` (:mod:`.fp16`); the old option is refused saying so."""
        return refuse_precision_option(data)


def board(options: OrtAarch64Options) -> Any:
    """The prepared board with onnxruntime installed, or an InputError saying which command prepares it."""
    from edgecraft.boards import prepared_board

    return prepared_board(options.device_cache_dir, PACKAGE_GROUP, target=TARGET, runtime="onnxruntime",
                          version=ORT_BOARD_VERSION)


class BoardSession(Session):
    """A model loaded by ONNX Runtime in the board server; one server process per session."""

    def __init__(self, artifact: Path, options: OrtAarch64Options, threads: int) -> None:
        self._timeout = options.request_timeout
        self._work = tempfile.TemporaryDirectory(prefix="edgecraft-ort-board-")
        self._lock = threading.Lock()
        try:
            identity = self._open(options)
            executed = Path(self._work.name) / "executed.onnx"
            facts = self._call({"op": "load", "path": str(artifact), "threads": threads,
                                "optimization": options.runtime_optimization, "optimized_path": str(executed)},
                               [], f"loading {artifact.name} on the board")[0]
            self._names: list[str] = facts["inputs"]
            ops = _op_counts(executed)
            features = _features(facts["hwcaps"])
            self._facts = {
                **identity, "runtime": f"onnxruntime {facts['onnxruntime']} (aarch64)",
                "cpu_features": features, "threads": threads,
                "optimization": f"{options.runtime_optimization} (on the board)",
                "executed_ops": ops, "integer_ops": sorted(op for op in ops if op in INTEGER_OPS),
                "timer": "perf_counter around session.run on the board",
            }
            self._describe_precision(artifact, executed, features)
        except BaseException:
            self.close()
            raise

    def _describe_precision(self, artifact: Path, executed: Path, features: dict[str, bool]) -> None:
        """For an fp16 artifact (quantization ``mode: fp16``): what the board's executed graph computed in, read from
        that graph, never assumed; refused on a CPU without fp16 arithmetic (``device: local`` is only read here)."""
        from edgecraft.backends.onnxruntime.fp16 import (
            check_board_fp16,
            executed_precision,
            holds_fp16,
            precision_label,
        )

        if not holds_fp16(artifact):
            return
        check_board_fp16(TARGET, features)
        ran = executed_precision(executed) if executed.is_file() else {}
        self._facts["precision"] = precision_label(ran) if ran else "unknown (the board saved no executed graph)"
        self._facts["fp16_executed"] = ran
        if ran and not ran["compute_ops_fp16"]:
            self._facts["precision_note"] = ("the artifact is fp16, but the board's ONNX Runtime computed every "
                                             "compute op in float32 behind Casts (no fp16 kernel for them here)")

    def _open(self, options: OrtAarch64Options) -> dict[str, Any]:
        """Start the board server in the emulated board; return what the report says about the board."""
        from edgecraft.boards import board_packages

        device = board(options)
        self._log = open(Path(self._work.name) / "server.log", "w+b")  # noqa: SIM115 - lives with the session
        self._proc = subprocess.Popen(device.python(wire.__file__, str(board_packages(device, PACKAGE_GROUP))),
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log)
        return dict(device.identity())

    @property
    def input_names(self) -> list[str]:
        return self._names

    def _call(self, header: dict[str, Any], arrays: list[np.ndarray], what: str) -> tuple[dict[str, Any],
                                                                                          list[np.ndarray]]:
        with self._lock:
            if self._proc.poll() is not None:
                raise RuntimeFailure(f"{TARGET}: the board server has exited ({self._proc.returncode}) "
                                     f"before {what}\n{self._log_tail()}")
            stdin, stdout = self._proc.stdin, self._proc.stdout
            assert stdin is not None and stdout is not None
            timer = threading.Timer(self._timeout, self._proc.kill)
            timer.start()
            try:
                wire.send(stdin, header, arrays)
                reply = wire.receive(stdout)
            except (OSError, EOFError) as exc:
                reply = None
                if self._proc.poll() is None:
                    raise RuntimeFailure(f"{TARGET}: lost the board server while {what}: {exc}") from exc
            finally:
                timer.cancel()
        if reply is None:
            raise RuntimeFailure(f"{TARGET}: the board server died while {what} (exit {self._proc.wait()}; killed "
                                 f"after request_timeout {self._timeout:g} s if negative)\n{self._log_tail()}")
        head, out = reply
        if not head.get("ok"):
            raise RuntimeFailure(f"{TARGET}: ONNX Runtime on the board failed {what}: {head.get('error')}")
        return head, out

    def _log_tail(self) -> str:
        self._log.flush()
        self._log.seek(0)
        return "\n".join(self._log.read().decode(errors="replace").strip().splitlines()[-10:])

    def _arrays(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        missing = [n for n in self._names if n not in feeds]
        if missing:
            raise InputError(f"missing model inputs {missing}; the model takes {self._names}")
        return [np.ascontiguousarray(feeds[n]) for n in self._names]

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return self._call({"op": "run"}, self._arrays(feeds), "running the model")[1]

    def timed_runs(self, feeds: Mapping[str, np.ndarray], repeats: int) -> list[float]:
        head = self._call({"op": "time", "repeats": repeats}, self._arrays(feeds), "timing the model")[0]
        return [float(s) for s in head["seconds"]]

    def describe(self) -> dict[str, Any]:
        return dict(self._facts)

    def close(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            try:
                assert proc.stdin is not None
                wire.send(proc.stdin, {"op": "exit"})
                proc.stdin.close()
                proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired, AssertionError):
                proc.kill()
                proc.wait()
        log: BinaryIO | None = getattr(self, "_log", None)
        if log is not None:
            log.close()
        work = getattr(self, "_work", None)
        if work is not None:
            work.cleanup()


class LocalBoardSession(BoardSession):
    """``device: local``: this process runs on the ARM board (a Ray node started there, see docs/arm-boards.md),
    so the board server's code runs in-process with the board's own onnxruntime: same load, same facts, same
    timer as on the emulated board, and real hardware (not emulated)."""

    def _open(self, options: OrtAarch64Options) -> dict[str, Any]:
        import platform

        if platform.machine().lower() not in ("aarch64", "arm64"):
            raise RuntimeFailure(f"{TARGET} with device: local runs on an ARM board, but this node is "
                                 f"{platform.machine()} ({platform.node()})",
                                 hint="place the target on the board's Ray node: placement: {resources: "
                                      "{\"board:NAME\": 1}} (docs/arm-boards.md), or use device: emulated; a step "
                                      "evaluating candidates while building (quantization's accuracy_aware) "
                                      "runs where the build does: set accuracy_aware: {enabled: off}")
        from edgecraft.cpu import user_mode_emulation

        self._server = wire.Server()
        emulation = user_mode_emulation()  # a Ray node inside the emulated board: QEMU's timings, not a core's
        if emulation:
            return {"device": platform.node(), "emulated": True, "machine": platform.machine(),
                    "emulator": emulation,
                    "note": "latency measured under emulation says nothing about a real ARM core"}
        return {"device": platform.node(), "emulated": False, "machine": platform.machine(),
                "note": "measured on the board's own CPU"}

    def _call(self, header: dict[str, Any], arrays: list[np.ndarray], what: str) -> tuple[dict[str, Any],
                                                                                          list[np.ndarray]]:
        with self._lock:
            try:
                return self._server.handle(header, arrays)
            except Exception as exc:
                raise RuntimeFailure(f"{TARGET}: ONNX Runtime on the board failed {what}: "
                                     f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        self._server = None
        super().close()


def _features(hwcaps: list[int]) -> dict[str, bool]:
    from edgecraft.boards import decode_hwcaps

    return decode_hwcaps(*hwcaps)


def _op_counts(path: Path) -> dict[str, int]:
    """Op types of the graph the board executed (after its optimizations), counted."""
    import onnx

    if not path.is_file():
        return {}
    graph = onnx.load(str(path), load_external_data=False).graph
    return dict(sorted(collections.Counter(node.op_type for node in graph.node).items()))
