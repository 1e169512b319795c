"""The child's side of :mod:`edgecraft.supervise`: tell the supervising ``edgecraft`` process how far a run got.

One JSON line per step on the pipe whose descriptor the supervisor passed in ``$EDGECRAFT_VERDICT_FD``:
``{"pending": true}`` when a run starts, ``{"reports": [...]}`` once its report set is written,
``{"verdict": CODE}`` at the very end. Nothing is written when the CLI runs unsupervised (tests call
``main()`` directly). The names are repeated in :mod:`edgecraft.supervise` (which must not import the CLI);
a test checks they agree.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

VERDICT_FD_ENV = "EDGECRAFT_VERDICT_FD"
PROG_NAME_ENV = "EDGECRAFT_PROG_NAME"

_verdict_fd: int | None = None


def adopt_verdict_fd() -> None:
    """Take the pipe's descriptor out of the environment: the run's own child processes must not inherit a
    number that names another file there."""
    global _verdict_fd
    value = os.environ.pop(VERDICT_FD_ENV, "")
    _verdict_fd = int(value) if value.isdigit() else None


def record(event: dict[str, Any]) -> None:
    """Tell the supervisor how far the run got (nothing when unsupervised)."""
    if _verdict_fd is None:
        return
    with contextlib.suppress(OSError):  # the supervisor is gone: nobody is left to mislead
        os.write(_verdict_fd, (json.dumps(event) + "\n").encode())
