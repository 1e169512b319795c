"""Signals during a run: SIGTERM and SIGINT unwind through ``finally`` so partial artifacts go away.

CI runners stop a job with SIGTERM (then SIGKILL after a grace period). Python's default SIGTERM
action ends the process at once, skipping every ``finally``: the ``.building-*`` folder in the cache
and the ``edgecraft-work-*`` folder in the temp dir stayed forever. The handler installed here raises
:class:`~edgecraft.user_code.Terminated` (a KeyboardInterrupt) instead, so the same cleanup runs as
for Ctrl-C, and the CLI reports one line and exits 143 (128 + SIGTERM), or 130 for SIGINT.
What SIGKILL leaves behind is collected by :mod:`edgecraft.assembly.cache_verify` on a later run.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from edgecraft.user_code import Terminated

EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


#: Signals received while :func:`terminate_raises` was active, in order. typer turns a
#: KeyboardInterrupt into a plain exit code 130, so the CLI reads what happened from here.
received: list[int] = []


def _raise(signum: int, frame: FrameType | None) -> None:
    received.append(signum)
    if signum == signal.SIGTERM:
        raise Terminated(f"signal {signum}")
    raise KeyboardInterrupt


@contextmanager
def terminate_raises() -> Iterator[None]:
    """While inside, SIGTERM raises Terminated and SIGINT KeyboardInterrupt, both recorded in
    :data:`received` (main thread only; elsewhere a no-op)."""
    received.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def interrupted_exit() -> int | None:
    """The exit code for the signal received last (130 SIGINT, 143 SIGTERM), after printing one line;
    None when no signal arrived."""
    import sys

    if not received:
        return None
    if received[-1] == signal.SIGTERM:
        sys.stderr.write("terminated (SIGTERM); partial artifacts removed\n")
        return EXIT_TERMINATED
    sys.stderr.write("interrupted; partial artifacts removed\n")
    return EXIT_INTERRUPTED
