"""The ``edgecraft`` command runs its work in a child process, so that exit 0 always means a verdict.

Why a supervising process: a plugin runs in the CLI's process and can end it with any code, past every
``try``: ``os._exit(0)``, a C library's ``exit(0)``. No check inside that process can refuse such an exit,
so the exit code is decided here, in a small parent that imports nothing but the standard library and
runs no plugin code. The child (``python -m edgecraft.cli``, the real CLI) writes one JSON line per step to
a pipe (:data:`VERDICT_FD_ENV`): ``pending`` when a run starts, ``reports`` once its report set is written,
``verdict`` with the exit code at the very end. A child that started a run and ended without a ``verdict``
line, whatever its exit status, did not finish: the reports it wrote are removed (they would contradict
the exit code) and exit 0 becomes exit 3. A marker file checked by a wrapper would only help CI
configurations that run the wrapper; this holds for every caller of ``edgecraft``.

The child is started in its own process group and the parent forwards SIGINT, SIGTERM and SIGHUP to it
once each, so Ctrl-C in a terminal reaches the child once (its handlers clean up) and the exit codes 130/143
are the child's. ``EDGECRAFT_SUPERVISE=0`` runs the CLI in the calling process (the test suite calls
``edgecraft.cli.main`` directly, which is the same).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

#: Shared with the child (edgecraft.cli.verdict_pipe; repeated, not imported: the parent stays light).
VERDICT_FD_ENV = "EDGECRAFT_VERDICT_FD"
SUPERVISE_ENV = "EDGECRAFT_SUPERVISE"
PROG_NAME_ENV = "EDGECRAFT_PROG_NAME"  # the child's usage lines say `edgecraft`, not `python -m ...`
EXIT_PLUGIN_FAILURE = 3  # edgecraft.errors' value; not imported, so the parent stays light

def console_main() -> None:
    """The ``edgecraft`` console script."""
    sys.exit(supervise(sys.argv[1:]))


def supervise(argv: list[str]) -> int:
    """Run ``edgecraft ARGV`` in a child process and return the exit code the outcome allows."""
    if os.environ.get(SUPERVISE_ENV) == "0":
        from edgecraft.cli import main

        return main(argv)
    read_end, write_end = os.pipe()
    env = {**os.environ, VERDICT_FD_ENV: str(write_end), SUPERVISE_ENV: "0",
           PROG_NAME_ENV: Path(sys.argv[0]).name or "edgecraft"}
    child = subprocess.Popen([sys.executable, "-m", "edgecraft.cli", *argv], env=env, pass_fds=(write_end,),
                             process_group=0)
    os.close(write_end)
    forwarded: set[int] = set()

    def forward(signum: int, _frame: object) -> None:
        if signum not in forwarded:
            forwarded.add(signum)
            with contextlib.suppress(OSError):
                child.send_signal(signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, forward)
    status = child.wait()
    events = _read_events(read_end)
    return decide(status, events)


def _read_events(fd: int) -> list[dict[str, Any]]:
    os.set_blocking(fd, False)  # the child is gone; a grandchild holding the pipe must not block us
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    events = []
    for line in b"".join(chunks).decode(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def decide(status: int, events: list[dict[str, Any]]) -> int:
    """The exit code for a child that ended with ``status`` (Popen's: negative for a signal) after ``events``."""
    code = 128 - status if status < 0 else status
    if not any(e.get("pending") for e in events):
        return code  # not a run (help, validate, ...): its own code
    verdicts = [e["verdict"] for e in events if isinstance(e.get("verdict"), int)]
    if verdicts:
        return verdicts[-1] if code == 0 else code  # an exit 0 after a failing verdict keeps the verdict
    reports = [str(p) for e in events for p in e.get("reports", []) if isinstance(p, str)]
    for path in reports:
        with contextlib.suppress(OSError):
            Path(path).unlink(missing_ok=True)
    removed = f"; reports removed: {', '.join(reports)}" if reports else ""
    if code == 0:
        sys.stderr.write("error (no verdict): the run's process ended with exit 0 before every verdict was judged "
                         f"and reported (a plugin calling os._exit?); exit 3, not a verdict{removed}\n")
        return EXIT_PLUGIN_FAILURE
    if removed:
        sys.stderr.write(f"note: the run did not finish (exit {code}){removed}\n")
    return code
