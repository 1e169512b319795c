"""Start and stop TVM's RPC server inside the emulated aarch64 device.

The server is TVM's own (``tvm.exec.rpc_server``), run by the device's arm64 Python under QEMU with
only TVM's runtime library loaded (``TVM_USE_RUNTIME_LIB=1``: ~3 s to import instead of loading the
compiler). Runs start it on a free loopback port and stop it when their session closes; servers are
shared by sessions of one process (reference-counted), so a baseline and a candidate measured in turn
do not each pay the start-up.

``python -m edgecraft.backends.tvm.rpc_server [--port P] [--cache-dir D]`` serves in the foreground
(for trying the device by hand, e.g. with ``tvm.rpc.connect``).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from edgecraft.backends.tvm.device import EmulatedDevice
from edgecraft.errors import RuntimeFailure

LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 180.0
#: A served board that has not been registered with its tracker for this long stops (see ``serve``).
LOST_TRACKER_S = 60.0


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


#: Prefix of a served emulated board's work folder (its TMPDIR). TVM's RPC server creates each session's
#: work folder there and reports it (``tvm.rpc.server.workpath``), so a client can tell which board it got
#: and that the board is an emulated one, not a real ARM core.
EMULATED_BOARD_PREFIX = "edgecraft-emulated-board-"


def _server_code(launcher: Path, host: str, port: int, parent: int, tracker: str | None = None,
                 key: str | None = None) -> str:
    # sys.executable must be the launcher: TVM's server re-launches sys.executable for its worker,
    # and the arm64 python binary cannot be exec'ed on the host without binfmt (see device.py).
    # The watchdog ends the server's process group when the edgecraft process that started it is gone
    # (killed without running its atexit hooks), so no emulated server outlives its run.
    extra = f", '--tracker', {tracker!r}, '--key', {key or ''!r}" if tracker else ""
    return (
        "import os, sys, runpy, signal, threading, time\n"
        "def _watch():\n"
        f"    while os.getppid() == {parent}:\n"
        "        time.sleep(1)\n"
        "    os.killpg(os.getpgid(0), signal.SIGKILL)\n"
        "threading.Thread(target=_watch, daemon=True).start()\n"
        f"sys.executable = {str(launcher)!r}\n"
        f"sys.argv = ['rpc_server', '--host', {host!r}, '--port', '{port}', '--port-end', '{port + 1}'{extra}]\n"
        "runpy.run_module('tvm.exec.rpc_server', run_name='__main__')\n"
    )


class EmulatedRPCServer:
    """TVM's RPC server in the emulated device, bound to a loopback port; a context manager."""

    def __init__(self, device: EmulatedDevice, *, threads: int = 1, port: int | None = None,
                 host: str = LOOPBACK, tracker: str | None = None, key: str | None = None,
                 name: str | None = None, log_path: Path | None = None) -> None:
        """``tracker`` (HOST:PORT) and ``key``: register with a TVM RPC tracker under ``key`` instead of
        being connected to directly; ``name`` labels the board in its work folder; ``log_path``: keep the
        server's log there (default: a temporary file removed on stop)."""
        self.device = device
        self.threads = threads
        self.host = host
        self.port = port
        self.tracker = tracker
        self.key = key
        self.name = name
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = log_path
        self._keep_log = log_path is not None
        self._workdir: Path | None = None

    @property
    def address(self) -> tuple[str, int]:
        if self.port is None:
            raise RuntimeError("the server is not started")
        return self.host, self.port

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = START_TIMEOUT_S) -> EmulatedRPCServer:
        self.device.manifest()  # InputError with the setup command if the device is not prepared
        if self.port is None:
            self.port = free_port(self.host)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "TVM_"))}
        env["TVM_NUM_THREADS"] = str(self.threads)
        env["OMP_NUM_THREADS"] = str(self.threads)
        self._workdir = Path(tempfile.mkdtemp(prefix=f"{EMULATED_BOARD_PREFIX}{self.name or 'local'}--"))
        env["TMPDIR"] = str(self._workdir)
        if self._log_path is None:
            fd, log = tempfile.mkstemp(prefix="edgecraft-tvm-rpc-", suffix=".log")
            self._log_path = Path(log)
            log_file = os.fdopen(fd, "wb")
        else:
            log_file = open(self._log_path, "wb")  # noqa: SIM115 (closed below, after the child has it)
        with log_file:
            # Own process group: stop() ends the server and the workers it forked, and nothing else.
            code = _server_code(self.device.launcher, self.host, self.port, os.getpid(), self.tracker, self.key)
            self._proc = subprocess.Popen(self.device.python("-c", code), stdin=subprocess.DEVNULL,
                                          stdout=log_file, stderr=subprocess.STDOUT, env=env,
                                          start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                text = self.log_text()
                self.stop()
                raise RuntimeFailure(f"the emulated device's RPC server exited at start "
                                     f"(code {self._proc.returncode if self._proc else '?'}):\n{text}")
            if "bind to" in self.log_text() and (
                    self._registered() if self.tracker is not None else _accepts(self.host, self.port)):
                return self
            time.sleep(0.2)
        text = self.log_text()
        self.stop()
        raise RuntimeFailure(f"the emulated device's RPC server did not listen within {timeout:.0f} s:\n{text}")

    def _registered(self) -> bool:
        """The tracker lists this server under its key (it registers right after binding)."""
        assert self.tracker is not None
        try:
            summary = tracker_summary(self.tracker)
        except Exception:
            return False
        return any(info.get("key") == f"server:{self.key}" and int(info.get("addr", [None, 0])[1]) == self.port
                   for info in summary.get("server_info", []))

    def log_text(self, lines: int = 20) -> str:
        if self._log_path is None or not self._log_path.exists():
            return ""
        return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=10)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        elif proc is not None:
            # The server is gone but workers it forked may hold the group: end them too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        if self._log_path is not None and not self._keep_log:
            self._log_path.unlink(missing_ok=True)
            self._log_path = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> EmulatedRPCServer:
        return self.start() if not self.running else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def split_address(address: str, what: str = "--tracker") -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port); InputError otherwise."""
    from edgecraft.errors import InputError

    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"{what} {address!r}: expected HOST:PORT, e.g. 127.0.0.1:9190")
    return host, int(port)


def tracker_summary(address: str, timeout: float = 10.0) -> dict[str, object]:
    """TVM's tracker summary (``queue_info``: per key total/free/pending; ``server_info``: boards)."""
    from tvm import rpc

    host, port = split_address(address)
    tracker = rpc.connect_tracker(host, port)
    try:
        if tracker._sock is not None:  # TrackerSession has no timeout of its own: never hang on a dead tracker
            tracker._sock.settimeout(timeout)
        return dict(tracker.summary())
    finally:
        tracker.close()


def serve(device: EmulatedDevice, *, tracker: str, key: str, host: str = LOOPBACK, port: int | None = None,
          threads: int = 1, name: str | None = None, log_path: Path | None = None,
          say: Callable[[str], None] | None = None) -> int:
    """Serve the emulated board in the foreground, registered with a TVM RPC tracker, until interrupted."""
    split_address(tracker)
    if not key or not key.replace("-", "").replace("_", "").replace(".", "").isalnum():
        from edgecraft.errors import InputError

        raise InputError(f"--key {key!r}: use letters, digits, '-', '_' and '.' (e.g. rk3588 or arm64-emulated)")
    say = say or (lambda message: print(message, flush=True))  # flushed: a supervisor's log shows it at once
    server = EmulatedRPCServer(device, threads=threads, port=port, host=host, tracker=tracker, key=key, name=name,
                               log_path=log_path)
    with server:
        say(f"emulated aarch64 board {name or ''} serving TVM RPC on {server.host}:{server.port}, registered with "
            f"the tracker at {tracker} under key {key!r} (Ctrl-C stops); timings on it are emulated")
        unregistered_since: float | None = None
        next_check = time.monotonic()
        try:
            while server.running:
                time.sleep(0.5)
                if time.monotonic() < next_check:
                    continue
                next_check = time.monotonic() + 5.0  # ask the tracker every 5 s, not on every tick
                if server._registered():
                    unregistered_since = None
                    continue
                # TVM's server gives up on a tracker that went away and stops serving while its process
                # lives on: exit instead, so a supervisor (systemd, a CI job) starts the board again.
                unregistered_since = unregistered_since or time.monotonic()
                if time.monotonic() - unregistered_since > LOST_TRACKER_S:
                    say(f"the board is no longer registered with the tracker at {tracker} (for "
                        f"{LOST_TRACKER_S:.0f} s); stopping:\n{server.log_text(5)}")
                    return 3
        except KeyboardInterrupt:
            pass
        if not server.running and server._proc is not None:
            say(f"the board's RPC server exited:\n{server.log_text()}")
            return 3
    return 0


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------- servers of this process
_lock = threading.Lock()
_running: list[EmulatedRPCServer] = []


def start_server(device: EmulatedDevice, threads: int) -> EmulatedRPCServer:
    """Start a server in ``device``; it is stopped by :func:`stop_server` or when this process exits."""
    server = EmulatedRPCServer(device, threads=threads).start()
    with _lock:
        _running.append(server)
    return server


def stop_server(server: EmulatedRPCServer) -> None:
    with _lock:
        if server in _running:
            _running.remove(server)
    server.stop()


@atexit.register
def _stop_all() -> None:
    with _lock:
        servers = list(_running)
        _running.clear()
    for server in servers:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve TVM RPC from the emulated aarch64 device.")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--port", type=int, default=9090)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    server = EmulatedRPCServer(EmulatedDevice.at(args.cache_dir), threads=args.threads, port=args.port)
    with server:
        print(f"TVM RPC server of the emulated aarch64 device on {server.host}:{server.port} (Ctrl-C stops)")
        try:
            while server.running:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
