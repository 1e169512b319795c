"""ONNX Runtime served on the aarch64 board: a script the board's own Python runs (under QEMU or on hardware).

It imports only the standard library, numpy and the board's onnxruntime (never edgecraft, which the board does
not have). The host drives it over stdin/stdout with length-prefixed frames: a JSON header, then the arrays
it announces, each in numpy's ``.npy`` format (``allow_pickle=False``: data only). Why a pipe and not TVM's
RPC or Ray: this is the smallest channel that needs nothing on the board but the runtime, and ONNX Runtime's
own timer (``perf_counter`` around ``session.run``) runs on the board, so the transfer is not timed.

Requests: ``load`` (model path, threads, optimization level, where to save the executed graph), ``run``
(arrays -> outputs), ``time`` (arrays, repeats -> seconds per call), ``exit``. Every reply has ``ok``; a
failure carries ``error`` (the exception's text, e.g. NOT_IMPLEMENTED for an op without an ARM kernel).

Usage on the board: ``python3 board_server.py [PACKAGES_DIR]`` (the folder holding onnxruntime's wheel).
"""

from __future__ import annotations

import io
import json
import struct
import sys
import time
from collections.abc import Sequence
from typing import Any, BinaryIO

_LEN = struct.Struct("<Q")


def read_frame(stream: BinaryIO) -> bytes | None:
    head = stream.read(_LEN.size)
    if len(head) < _LEN.size:
        return None
    (size,) = _LEN.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError(f"frame cut short: {len(data)} of {size} bytes")
    return data


def write_frame(stream: BinaryIO, data: bytes) -> None:
    stream.write(_LEN.pack(len(data)))
    stream.write(data)


def send(stream: BinaryIO, header: dict[str, Any], arrays: Sequence[Any] = ()) -> None:
    import numpy as np

    write_frame(stream, json.dumps({**header, "arrays": len(arrays)}).encode())
    for array in arrays:
        buf = io.BytesIO()
        np.save(buf, np.asarray(array), allow_pickle=False)
        write_frame(stream, buf.getvalue())
    stream.flush()


def receive(stream: BinaryIO) -> tuple[dict[str, Any], list[Any]] | None:
    import numpy as np

    frame = read_frame(stream)
    if frame is None:
        return None
    header = json.loads(frame)
    arrays = []
    for _ in range(int(header.get("arrays", 0))):
        data = read_frame(stream)
        if data is None:
            raise EOFError("stream ended inside a message")
        arrays.append(np.load(io.BytesIO(data), allow_pickle=False))
    return header, arrays


def _hwcaps() -> list[int]:
    """``getauxval(AT_HWCAP)``, ``(AT_HWCAP2)``: the CPU features this process's kernels see (0s off Linux)."""
    import ctypes

    try:
        getauxval = ctypes.CDLL(None).getauxval
    except (AttributeError, OSError):
        return [0, 0]
    getauxval.restype = ctypes.c_ulong
    return [int(getauxval(16)), int(getauxval(26))]


class Server:
    """One ONNX Runtime session and the requests on it (also used in-process on a real board)."""

    def __init__(self) -> None:
        self.session: Any = None

    def load(self, req: dict[str, Any]) -> dict[str, Any]:
        import onnxruntime as ort

        levels = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
                  "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                  "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                  "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
        so = ort.SessionOptions()
        so.graph_optimization_level = levels[req["optimization"]]
        so.intra_op_num_threads = int(req["threads"])
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if req.get("allow_spinning") else "0")
        if req.get("optimized_path"):
            so.optimized_model_filepath = req["optimized_path"]
        self.session = ort.InferenceSession(req["path"], so, providers=["CPUExecutionProvider"])
        return {"onnxruntime": ort.__version__, "hwcaps": _hwcaps(),
                "inputs": [i.name for i in self.session.get_inputs()],
                "outputs": [o.name for o in self.session.get_outputs()]}

    def feeds(self, arrays: list[Any]) -> dict[str, Any]:
        return {i.name: a for i, a in zip(self.session.get_inputs(), arrays, strict=True)}

    def handle(self, req: dict[str, Any], arrays: list[Any]) -> tuple[dict[str, Any], list[Any]]:
        op = req.get("op")
        if op == "load":
            return self.load(req), []
        if self.session is None:
            raise RuntimeError(f"request {op!r} before load")
        if op == "run":
            return {}, list(self.session.run(None, self.feeds(arrays)))
        if op == "time":
            feeds = self.feeds(arrays)
            seconds = []
            for _ in range(int(req["repeats"])):
                start = time.perf_counter()
                self.session.run(None, feeds)
                seconds.append(time.perf_counter() - start)
            return {"seconds": seconds}, []
        raise ValueError(f"unknown request {op!r}")


def main() -> int:
    if len(sys.argv) > 1:
        sys.path.insert(0, sys.argv[1])
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # anything a library prints must not corrupt the frames
    server = Server()
    while True:
        message = receive(stdin)
        if message is None or message[0].get("op") == "exit":
            return 0
        try:
            header, out = server.handle(*message)
            send(stdout, {"ok": True, **header}, out)
        except Exception as exc:  # the host raises it with the request's context
            send(stdout, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})


if __name__ == "__main__":
    sys.exit(main())
