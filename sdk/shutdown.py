"""Signals during a run: SIGTERM and SIGINT unwind through ``finally`` so partial artifacts go away.

CI runners stop a job with SIGTERM (then SIGKILL after a grace period). Python's default SIGTERM
action ends the process at once, skipping every ``finally``: the ``.building-*`` folder in the cache
and the ``edgecraft-work-*`` folder in the temp dir stayed forever. The handler installed here raises
:class:`~edgecraft.user_code.Terminated` (a KeyboardInterrupt) instead, so the same cleanup runs as
for Ctrl-C, and the CLI reports one line and exits 143 (128 + SIGTERM), or 130 for SIGINT.
What SIGKILL leaves behind is collected by :mod:`edgecraft.cache_verify` on a later run.
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


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(f"signal {signum}")


@contextmanager
def terminate_raises() -> Iterator[None]:
    """While inside, SIGTERM raises Terminated (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
