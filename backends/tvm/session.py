"""Run a TVM artifact: locally (``tvm-llvm-host``) or on an aarch64 device through TVM RPC.

Both paths drive the Relax VM the same way (``set_input`` → ``invoke_stateful`` → ``get_outputs``,
which also works over RPC for multi-output models) and time it with the VM's ``time_evaluator``:
on a remote device that timer runs *on the device*, so network round trips and host-side copies are not
counted as model latency.

Every load first runs the probe input recorded at build time and compares it with ONNX Runtime's
outputs on the host; a device that computes something else fails loudly instead of producing numbers.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from edgecraft.backend import Session
from edgecraft.backends.tvm.compile import LIBRARY, META, PROBE
from edgecraft.backends.tvm.options import AArch64Options, HostOptions
from edgecraft.errors import InputError, RuntimeFailure

#: ``runtime.config_threadpool`` affinity mode 1 = kBig (all cores of the fastest cluster).
_AFFINITY_BIG = 1
BOARD_HINT = ("on the board: pip install apache-tvm apache-tvm-ffi==0.1.14.post1 tornado psutil cloudpickle; "
              "TVM_USE_RUNTIME_LIB=1 python -m tvm.exec.rpc_server --host 0.0.0.0 --port 9090 "
              "(or --tracker HOST:9190 --key KEY to join a tracker)")


class TvmSession(Session):
    """A Relax VM over a loaded library on a (local or remote) CPU device."""

    def __init__(self, vm: Any, dev: Any, meta: dict[str, Any], facts: dict[str, Any],
                 on_close: Callable[[], None] | None = None, keepalive: Any = None) -> None:
        self._vm = vm
        self._keepalive = keepalive  # the RPC session: the remote module dies with it
        self._dev = dev
        self._meta = meta
        self._facts = facts
        self._on_close = on_close

    @property
    def input_names(self) -> list[str]:
        return [spec["name"] for spec in self._meta["inputs"]]

    def _args(self, feeds: Mapping[str, np.ndarray]) -> list[Any]:
        import tvm

        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise InputError(f"missing model inputs {missing}; the model takes {self.input_names}")
        return [tvm.runtime.tensor(np.ascontiguousarray(feeds[spec["name"]], dtype=spec["dtype"]), self._dev)
                for spec in self._meta["inputs"]]

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        with self._device_call("running the model"):
            self._vm.set_input("main", *self._args(feeds))
            self._vm.invoke_stateful("main")
            return _flatten(self._vm.get_outputs("main"))

    def timed_runs(self, feeds: Mapping[str, np.ndarray], repeats: int) -> list[float]:
        """Seconds per call, timed by TVM's evaluator on the device itself (one untimed warm-up call)."""
        with self._device_call("timing the model"):
            self._vm.set_input("main", *self._args(feeds))
            timer = self._vm.time_evaluator("invoke_stateful", self._dev, number=1, repeat=max(1, repeats))
            return [float(t) for t in timer("main").results]

    @contextlib.contextmanager
    def _device_call(self, what: str) -> Iterator[None]:
        """A board that dies or drops the connection mid-run is a RuntimeFailure naming it, not a traceback."""
        try:
            yield
        except (InputError, RuntimeFailure):
            raise
        except Exception as exc:
            if self._keepalive is None:  # local (tvm-llvm-host): a TVM error, not a lost device
                raise
            board = self._facts.get("board") or self._facts.get("device", "the device")
            raise RuntimeFailure(f"the device {board} ({self._facts.get('device')}) failed while {what}: "
                                 f"{_short(exc)}", hint="the board was lost or its RPC server stopped; check it "
                                 "(`edgecraft device status --tracker HOST:PORT` lists a tracker's boards) and run "
                                 "again") from exc

    def describe(self) -> dict[str, Any]:
        return dict(self._facts)

    def close(self) -> None:
        on_close, self._on_close = self._on_close, None
        self._vm = None
        self._keepalive = None
        if on_close is not None:
            on_close()


def _flatten(value: Any) -> list[np.ndarray]:
    if hasattr(value, "numpy"):
        return [value.numpy()]
    out: list[np.ndarray] = []
    for item in value:
        out.extend(_flatten(item))
    return out


def read_meta(artifact_dir: Path) -> dict[str, Any]:
    path = artifact_dir / META
    if not path.is_file() or not (artifact_dir / LIBRARY).is_file():
        raise InputError(f"{artifact_dir} is not a TVM artifact (needs {LIBRARY} and {META})")
    return json.loads(path.read_text())


def check_against_host(session: TvmSession, artifact_dir: Path, tolerance: float) -> float:
    """Run the build-time probe on the device; RuntimeFailure if it differs from ORT on the host."""
    with np.load(artifact_dir / PROBE) as probe:
        inputs = [probe[f"in{i}"] for i in range(len(session.input_names))]
        expected = [probe[k] for k in sorted((k for k in probe.files if k.startswith("out")),
                                             key=lambda k: int(k[3:]))]
    got = session.run(dict(zip(session.input_names, inputs, strict=True)))
    if len(got) != len(expected):
        raise RuntimeFailure(f"the device returned {len(got)} outputs, ONNX Runtime on the host {len(expected)}")
    worst = 0.0
    for g, e in zip(got, expected, strict=True):
        if g.shape != e.shape:
            raise RuntimeFailure(f"output shape on the device {g.shape} != ONNX Runtime's {e.shape}")
        diff = float(np.max(np.abs(g.astype(np.float64) - e.astype(np.float64)))) if e.size else 0.0
        scale = max(1.0, float(np.max(np.abs(e)))) if e.size else 1.0
        if not np.isfinite(diff) or diff / scale > tolerance:
            raise RuntimeFailure(
                f"outputs on {session.describe().get('device', 'the device')} differ from ONNX Runtime on the "
                f"host by {diff:.3g} (allowed {tolerance:g} x max(1, |ref|) = {tolerance * scale:.3g})",
                hint="a wrong -mcpu/mattr for the board, or a TVM bug; try cpu: generic")
        worst = max(worst, diff)
    return worst


# ------------------------------------------------------------------------------ host
def load_host(artifact_dir: Path, options: HostOptions, threads: int) -> TvmSession:
    import tvm
    import tvm_ffi
    from tvm.runtime.vm import VirtualMachine

    meta = read_meta(artifact_dir)
    # The worker pool is sized once per process from TVM_NUM_THREADS; config_threadpool then limits it.
    os.environ.setdefault("TVM_NUM_THREADS", str(threads))
    tvm_ffi.get_global_func("runtime.config_threadpool")(_AFFINITY_BIG, threads)
    module = tvm.runtime.load_module(str(artifact_dir / LIBRARY))
    dev = tvm.cpu()
    facts = {"device": "host", "emulated": False, "runtime": f"TVM {tvm.__version__} Relax VM",
             "tvm_target": meta.get("tvm_target"), "threads": int(tvm_ffi.get_global_func("runtime.NumThreads")()),
             "tuned": meta.get("tuned", False), "timer": "TVM time_evaluator"}
    session = TvmSession(VirtualMachine(module, dev), dev, meta, facts)
    facts["host_check_max_abs_diff"] = check_against_host(session, artifact_dir, options.check_tolerance)
    return session


# ------------------------------------------------------------------------------ remote
class _Connection:
    """An RPC session shared by the sessions of this process that run on one device.

    TVM's RPC server serves one client at a time (the next connection waits until the current session
    ends), so a baseline and a candidate loaded one after the other must share the connection; on a
    tracker, sharing also keeps both on the same board, so their latencies are comparable.
    """

    def __init__(self, remote: Any, identity: dict[str, Any], closer: Callable[[], None]) -> None:
        self.remote = remote
        self.identity = identity
        self.closer = closer
        self.users = 0


_pool: dict[tuple[Any, ...], _Connection] = {}
_pool_lock = threading.Lock()


def _device_key(options: AArch64Options, threads: int) -> tuple[Any, ...]:
    if options.device == "emulated":
        return ("emulated", str(options.device_cache_dir), threads)
    if options.device == "rpc":
        return ("rpc", options.rpc_host, options.rpc_port)
    return ("tracker", options.tracker_host, options.tracker_port, options.tracker_key)


def _open(options: AArch64Options, threads: int) -> _Connection:
    from tvm import rpc

    if options.device == "emulated":
        from edgecraft.backends.tvm.device import EmulatedDevice
        from edgecraft.backends.tvm.rpc_server import start_server, stop_server

        device = EmulatedDevice.at(options.device_cache_dir)
        identity = device.identity()
        server = start_server(device, threads)
        try:
            remote = rpc.connect(*server.address, session_timeout=options.session_timeout)
        except Exception as exc:
            log = server.log_text()
            stop_server(server)
            raise RuntimeFailure(f"cannot connect to the emulated device's RPC server: {_short(exc)}\n{log}") from exc
        identity["rpc"] = "{}:{}".format(*server.address)
        return _Connection(remote, identity, lambda: stop_server(server))
    if options.device == "rpc":
        where = f"{options.rpc_host}:{options.rpc_port}"
        try:
            remote = rpc.connect(options.rpc_host, options.rpc_port, session_timeout=options.session_timeout)
        except Exception as exc:
            raise RuntimeFailure(f"cannot reach the TVM RPC server at {where}: {_short(exc)}", hint=BOARD_HINT) from exc
        return _Connection(remote, {"device": f"rpc://{where}", "emulated": options.board_emulated}, lambda: None)
    remote = request_board(options)
    identity = {"device": f"tracker://{options.tracker_host}:{options.tracker_port}/{options.tracker_key}",
                "emulated": options.board_emulated}
    return _Connection(remote, identity, lambda: None)


#: How often a board the tracker handed out but that does not answer is skipped for the next one.
BOARD_ATTEMPTS = 3


def request_board(options: AArch64Options) -> Any:
    """A session on a free board with ``tracker_key``, waiting at most ``tracker_timeout`` seconds.

    TVM's ``TrackerSession.request`` waits in the tracker's queue without a timeout (a key no board
    serves would hang the run forever), so the tracker socket gets one; a board the tracker hands out that
    cannot be reached (killed after it registered) is skipped for the next free one, a few times.
    """
    from tvm import rpc

    where = f"{options.tracker_host}:{options.tracker_port}"
    key = options.tracker_key
    hint = (f"`edgecraft device status --tracker {where}` lists the tracker's boards and queue; start one with "
            f"`edgecraft device serve arm64-emulated --tracker {where} --key {key}`; for a real board, {BOARD_HINT}")
    deadline = time.monotonic() + options.tracker_timeout
    last = "no answer"
    for _ in range(BOARD_ATTEMPTS):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            tracker = rpc.connect_tracker(options.tracker_host, options.tracker_port)
        except Exception as exc:
            raise RuntimeFailure(f"cannot reach the TVM RPC tracker at {where}: {_short(exc)}", hint=hint) from exc
        try:
            if tracker._sock is not None:  # see the docstring: the tracker's own client never times out
                tracker._sock.settimeout(left)
            return tracker.request(key, priority=1, session_timeout=options.session_timeout, max_retry=1)
        except Exception as exc:
            last = _short(exc)
            if "timed out" in last or isinstance(exc.__context__, TimeoutError):
                break
        finally:
            tracker.close()
    raise RuntimeFailure(f"no free board with key {key!r} on the TVM RPC tracker at {where} within "
                         f"{options.tracker_timeout:g} s (tracker_timeout): {last}", hint=hint)


def connect(options: AArch64Options, threads: int) -> tuple[Any, dict[str, Any], Callable[[], None]]:
    """The (shared) RPC session to the device the options name, its identity, and how to release it."""
    key = _device_key(options, threads)
    with _pool_lock:
        conn = _pool.get(key)
        if conn is None:
            conn = _pool[key] = _open(options, threads)
        conn.users += 1

    def release() -> None:
        with _pool_lock:
            conn.users -= 1
            if conn.users > 0:
                return
            _pool.pop(key, None)
            conn.remote = None
        conn.closer()

    return conn.remote, dict(conn.identity), release


def load_remote(artifact_dir: Path, options: AArch64Options, threads: int) -> TvmSession:
    from tvm.runtime.vm import VirtualMachine

    meta = read_meta(artifact_dir)
    if meta.get("elf_machine") != "aarch64":
        raise InputError(f"{artifact_dir} holds a {meta.get('elf_machine')} library, not an aarch64 one")
    remote, identity, release = connect(options, threads)
    try:
        name = f"edgecraft-{uuid.uuid4().hex[:12]}.so"
        remote.upload(str(artifact_dir / LIBRARY), target=name)
        module = remote.load_module(name)
        dev = remote.cpu()
        try:
            remote.get_function("runtime.config_threadpool")(_AFFINITY_BIG, threads)
            identity["threads"] = int(remote.get_function("runtime.NumThreads")())
        except Exception:  # an older runtime on a board: keep its default pool
            identity["threads"] = "device default"
        identity.update({"runtime": f"TVM {meta.get('tvm')} Relax VM over RPC", "tvm_target": meta.get("tvm_target"),
                         "tuned": meta.get("tuned", False), "timer": "TVM time_evaluator on the device"})
        if options.device != "emulated":
            _identify_board(remote, identity, options)
        session = TvmSession(VirtualMachine(module, dev), dev, meta, identity, on_close=release, keepalive=remote)
        identity["host_check_max_abs_diff"] = check_against_host(session, artifact_dir, options.check_tolerance)
        return session
    except BaseException:
        release()
        raise


def _identify_board(remote: Any, identity: dict[str, Any], options: AArch64Options) -> None:
    """Which board this is (TVM's server reports its session folder), and refuse an emulated board that the
    options take for a real one: its latency would be judged as a real core's."""
    from edgecraft.backends.tvm.rpc_server import EMULATED_BOARD_PREFIX

    try:
        workdir = str(remote.get_function("tvm.rpc.server.workpath")(""))
    except Exception:  # a C++ RPC server (no Python) has no workpath function
        return
    identity["board_workdir"] = workdir
    emulated = EMULATED_BOARD_PREFIX in workdir
    if emulated:
        identity["board"] = workdir.split(EMULATED_BOARD_PREFIX, 1)[1].split("/", 1)[0].rsplit("--", 1)[0]
        identity["note"] = "an emulated board (QEMU): its latency says nothing about a real ARM core"
    if emulated and not options.board_emulated:
        raise RuntimeFailure(f"{identity['device']} is an emulated board ({identity['board']}, an edgecraft "
                             "emulated device), but the target takes it for real hardware",
                             hint="set board_emulated: true on the target (latency is then labelled emulated), "
                                  "or keep emulated boards under another tracker key")


def _short(exc: BaseException) -> str:
    lines = [ln for ln in str(exc).splitlines() if ln.strip()]
    return lines[-1][:300] if lines else type(exc).__name__
