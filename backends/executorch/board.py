"""``executorch-aarch64``: the same XNNPACK ``.pte`` run by ExecuTorch's C++ runtime on the aarch64 board.

Why a C++ runner and not the board's Python: executorch's aarch64 *Python* binding needs libtorch, and
PyPI's aarch64 torch (2.13) is a CUDA build that does not load on the board. The executorch aarch64 wheel
also ships its C++ runtime (``executorch/lib/libexecutorch*.so``: program loader, ``Module`` API, XNNPACK
delegate, optimized and quantized kernels, threadpool) and headers, and those libraries need only
libc/libstdc++ (checked with ``readelf -d``). So ``edgecraft device setup`` installs that wheel on the board
(:data:`PACKAGE_GROUP`), :func:`runner` cross-compiles ``board_runner.cpp`` against the board's copy
(``aarch64-linux-gnu-g++``; cached by source, wheel and compiler), and the session drives the runner under
QEMU over a pipe (the protocol is in ``board_runner.cpp``). Accuracy then comes from XNNPACK's ARM kernels
(NEON, dot product, fp16 arithmetic of the board's Cortex-A76) and latency from the runner's clock on the
board, labelled emulated like ``tvm-aarch64`` and ``ort-aarch64``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
from edgecraft.backends.executorch.options import ExecutorchAarch64Options
from edgecraft.errors import InputError, RuntimeFailure

TARGET = "executorch-aarch64"
#: The executorch wheel on the board: the host's version, so host and board run the same runtime on one .pte.
ET_BOARD_VERSION = "1.5.1"
BOARD_REQUIREMENTS = [f"executorch=={ET_BOARD_VERSION}"]
PACKAGE_GROUP = "executorch"
SOURCE = Path(__file__).with_name("board_runner.cpp")
#: The libraries the runner links (--no-as-needed: the delegate and kernel libraries register at load).
LIBS = ("executorch", "executorch_backend_xnnpack", "executorch_kernels_optimized", "executorch_kernels_quantized",
        "executorch_threadpool")
#: What the wheel's cmake config (lib/cmake/executorch/executorch-config.cmake) says a consumer compiles with.
DEFINES = ("C10_USING_CUSTOM_GENERATED_MACROS", "ET_EVENT_TRACER_ENABLED", "ET_USE_THREADPOOL")


def board(options: ExecutorchAarch64Options) -> Any:
    """The prepared board with executorch's aarch64 wheel installed, or an InputError naming the command."""
    from edgecraft.boards import prepared_board

    return prepared_board(options.device_cache_dir, PACKAGE_GROUP, target=TARGET, runtime="executorch",
                          version=ET_BOARD_VERSION)


def runner(device: Any) -> Path:
    """The cross-compiled runner for ``device``, built once per (source, wheel, compiler) and kept in the
    device's folder; built in a temporary file and renamed, so concurrent first uses do not see half a file."""
    from edgecraft.boards import CROSS_CXX, PACKAGES, require_tool, tool_version

    package = f"/{PACKAGES}/{PACKAGE_GROUP}/executorch"
    root = device.rootfs / package.lstrip("/")
    include, lib = root / "include", root / "lib"
    if not (include / "executorch" / "extension" / "module" / "module.h").is_file():
        raise InputError(f"target {TARGET!r}: the board's executorch has no C++ headers in {include}",
                         hint="run `edgecraft device setup arm64-emulated --force`")
    key = hashlib.sha256(b"\0".join([SOURCE.read_bytes(), ET_BOARD_VERSION.encode(),
                                     tool_version(CROSS_CXX).encode(), " ".join(DEFINES).encode()])).hexdigest()[:16]
    binary = device.home / "native" / f"executorch-runner-{key}"
    if binary.is_file():
        return binary
    cxx = require_tool(CROSS_CXX, f"building the {TARGET} runner")
    # The board's loader finds the libraries at their path inside the board's root, not the host's.
    return compile_runner(cxx, include, lib, f"{package}/lib", binary, "compiling the board runner")


def compile_runner(cxx: str, include: Path, lib: Path, rpath: str, binary: Path, what: str) -> Path:
    """board_runner.cpp compiled with ``cxx`` against an executorch package's headers and libraries into
    ``binary`` (written under a staging name and moved, so a concurrent or killed build never leaves half a
    binary); one recipe for the cross-compiled emulated runner and the one a real board compiles natively."""
    binary.parent.mkdir(parents=True, exist_ok=True)
    staging = binary.with_name(f".{binary.name}.{os.getpid()}")
    cmd = [cxx, "-std=c++17", "-O2", "-w", *(f"-D{d}" for d in DEFINES), f"-I{include}",
           f"-I{include}/executorch/runtime/core/portable_type/c10", str(SOURCE), "-o", str(staging), f"-L{lib}",
           "-Wl,--no-as-needed", *(f"-l{name}" for name in LIBS), "-Wl,--as-needed", f"-Wl,-rpath,{rpath}"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        staging.unlink(missing_ok=True)
        raise RuntimeFailure(f"{TARGET}: {what} failed (exit {done.returncode})\n"
                             + "\n".join(done.stderr.strip().splitlines()[-15:]))
    staging.replace(binary)
    return binary


#: Input dtypes the runner converts to ExecuTorch tensors (numpy names; board_runner.cpp's kTypes).
DTYPES = ("float32", "float16", "int64", "int32", "int8", "uint8", "bool")


def _header(array: np.ndarray) -> bytes:
    if array.dtype.name not in DTYPES:
        raise InputError(f"{TARGET}: an input of dtype {array.dtype.name} cannot be sent to the board runner",
                         hint=f"feed one of {', '.join(DTYPES)} (the model's declared input dtype)")
    return f"{array.dtype.name} {array.nbytes} {array.ndim} {' '.join(str(d) for d in array.shape)}\n".encode()


class BoardRunner:
    """One runner process on the board with one program loaded; requests are serialized by a lock."""

    def __init__(self, device: Any, pte: Path, threads: int, timeout: float, *, native: Path | None = None) -> None:
        """Under QEMU on the emulated ``device``; or ``native``: that runner binary run directly (``device: local``
        on a real board, :mod:`.local`)."""
        self._timeout = timeout
        self._lock = threading.Lock()
        self._log = tempfile.TemporaryFile(prefix="edgecraft-et-board-")  # noqa: SIM115 - lives with the runner
        command = ([str(native), str(pte), str(threads)] if native is not None
                   else device.native(runner(device), str(pte), str(threads)))
        self._proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log)
        try:
            words = self._reply(f"loading {pte.name} on the board")
            if len(words) != 5:
                raise RuntimeFailure(f"{TARGET}: unexpected reply from the board runner: {' '.join(words)}")
        except BaseException:
            self.close()
            raise
        self.inputs, self.outputs, self.threads, self.hwcap, self.hwcap2 = (int(w) for w in words)
        #: The dtypes the program's outputs came back in on the board (float16: the fp16 graph ran in fp16).
        self.output_dtypes: list[str] = []

    def _reply(self, what: str) -> list[str]:
        assert self._proc.stdout is not None
        timer = threading.Timer(self._timeout, self._proc.kill)
        timer.start()
        try:
            line = self._proc.stdout.readline().decode(errors="replace").strip()
        finally:
            timer.cancel()
        if not line:
            raise RuntimeFailure(f"{TARGET}: the board runner died while {what} (exit {self._proc.wait()}; killed "
                                 f"after request_timeout {self._timeout:g} s if negative)\n{self.log_tail()}")
        kind, _, rest = line.partition(" ")
        if kind == "error":
            raise RuntimeFailure(f"{TARGET}: ExecuTorch on the board failed {what}: {rest}\n{self.log_tail()}")
        if kind not in ("ok", "ready"):
            raise RuntimeFailure(f"{TARGET}: unexpected reply from the board runner while {what}: {line[:200]}")
        return rest.split()

    def _send(self, request: str, arrays: list[np.ndarray]) -> None:
        stdin = self._proc.stdin
        assert stdin is not None
        if self._proc.poll() is not None:
            raise RuntimeFailure(f"{TARGET}: the board runner has exited ({self._proc.returncode})\n{self.log_tail()}")
        arrays = [np.ascontiguousarray(a) for a in arrays]
        headers = [_header(a) for a in arrays]  # InputError before anything is sent
        stdin.write(f"{request} {len(arrays)}\n".encode())
        for head, array in zip(headers, arrays, strict=True):
            stdin.write(head + array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
        stdin.flush()

    def _tensor(self) -> np.ndarray:
        assert self._proc.stdout is not None
        name, rank, *dims = self._proc.stdout.readline().decode().split()
        shape = tuple(int(d) for d in dims[:int(rank)])
        dtype = np.dtype(name).newbyteorder("<")
        data = self._proc.stdout.read(int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)
        return np.frombuffer(data, dtype).reshape(shape).astype(dtype.newbyteorder("="))

    def run(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        with self._lock:
            try:
                self._send("run", arrays)
                count = int(self._reply("running the model")[0])
                outputs = [self._tensor() for _ in range(count)]
                self.output_dtypes = [o.dtype.name for o in outputs]
                return outputs
            except (OSError, ValueError) as exc:
                raise RuntimeFailure(f"{TARGET}: lost the board runner while running the model: {exc}\n"
                                     f"{self.log_tail()}") from exc

    def time(self, arrays: list[np.ndarray], repeats: int) -> list[float]:
        with self._lock:
            try:
                self._send(f"time {repeats}", arrays)
                self._reply("timing the model")
                assert self._proc.stdout is not None
                return [float(s) for s in self._proc.stdout.readline().split()]
            except (OSError, ValueError) as exc:
                raise RuntimeFailure(f"{TARGET}: lost the board runner while timing: {exc}") from exc

    def log_tail(self) -> str:
        self._log.seek(0)
        lines = self._log.read().decode(errors="replace").strip().splitlines()
        return "\n".join(line for line in lines[-12:] if "cpuinfo_utils" not in line)

    def close(self) -> None:
        proc = self._proc
        if proc.poll() is None:
            try:
                assert proc.stdin is not None
                proc.stdin.write(b"exit\n")
                proc.stdin.close()
                proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired, AssertionError):
                proc.kill()
                proc.wait()
        self._log.close()
