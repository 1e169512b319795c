"""Errors that map to the CLI's exit codes.

CI pipelines branch on the exit code, so every failure edgecraft anticipates is one of these
classes: bad input is the user's to fix (2), a plugin or runtime failure is the environment's (3).
A failed contract is not an exception at all: it is a verdict (exit code 1).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

EXIT_OK = 0
EXIT_CONTRACT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_PLUGIN_FAILURE = 3
#: A latency verdict stayed inconclusive and the plan's ``gate.inconclusive`` is ``error``.
EXIT_INCONCLUSIVE = 4
#: Every contract passed, but an integration's lifecycle hook (``edgecraft_run_started``,
#: ``edgecraft_target_finished``, ``edgecraft_report_ready``) raised: the reports are written with every verdict
#: and an ``integration_errors`` section naming the plugin, the hook and the exception. Not 0: a release whose
#: tracker or notification failed is not recorded where the team expects it. Not 3: nothing is wrong with the
#: model, the plan or the measurements. A plugin named in EDGECRAFT_BEST_EFFORT_PLUGINS does not change the code.
EXIT_INTEGRATION_FAILED = 5


class EdgecraftError(Exception):
    """Base class: carries the exit code the CLI should return."""

    exit_code: int = EXIT_PLUGIN_FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class InputError(EdgecraftError):
    """The plan, model, data or options are wrong (exit code 2)."""

    exit_code = EXIT_BAD_INPUT


class PlanValidationError(InputError):
    """The plan file does not match the schema; the message lists every bad field."""


class CompileError(InputError):
    """A step cannot be compiled for a target (exit code 2): raised before anything is built."""

    def __init__(self, message: str, *, step: str | None = None, target: str | None = None,
                 hint: str | None = None) -> None:
        where = " ".join(p for p in (f"step {step}" if step else "", f"on target {target!r}" if target else "") if p)
        super().__init__(f"{where}: {message}" if where else message, hint=hint)
        self.step = step
        self.target = target


class PluginError(EdgecraftError):
    """A plugin failed to load, registered something invalid, or raised while working (exit code 3)."""

    exit_code = EXIT_PLUGIN_FAILURE


class RuntimeFailure(EdgecraftError):
    """A runtime (ONNX Runtime, OpenVINO, TVM, a device) failed (exit code 3)."""

    exit_code = EXIT_PLUGIN_FAILURE


class EnvironmentFailure(RuntimeFailure):
    """The machine failed the run: a path that is not writable, not a directory, or a full disk (exit code 3).

    The message names the path and the operating system's own words, on one line: this is for the
    person fixing the CI runner, who needs no traceback (``--debug`` shows it).
    """


def resolve_input_path(path: Path, *, field: str) -> Path:
    """``path.resolve()`` for a path the user gave, with a symlink loop (or a name the OS refuses) reported as
    bad input naming ``field``, not as a ``RuntimeError`` traceback from :mod:`pathlib`."""
    try:
        return path.resolve()
    except (RuntimeError, OSError) as exc:  # pathlib raises RuntimeError("Symlink loop from ...")
        loop = "loop" in str(exc).lower() or getattr(exc, "errno", None) == errno.ELOOP
        why = "a symbolic link loop" if loop else str(exc)
        raise InputError(f"{field}: {path} cannot be resolved ({why})",
                         hint="point it at a real file (`ls -l` shows where each link leads)") from exc


# ------------------------------------------------------------------------------------------ full disks
#: A filesystem with less free space than this (or under 1% free) is "full" when a write there failed:
#: runtimes report a full disk in their own words (ONNX Runtime: "Protobuf serialization failed").
NEARLY_FULL_BYTES = 1 << 20
_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


def _statvfs(path: Path) -> os.statvfs_result | None:
    """The filesystem holding ``path`` or its nearest existing ancestor (None: it cannot be read)."""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return os.statvfs(probe)
    except OSError:
        return None


def free_bytes(path: Path) -> int | None:
    """Free bytes (for unprivileged users) on the filesystem holding ``path`` or its nearest existing ancestor."""
    st = _statvfs(path)
    return None if st is None else st.f_bavail * st.f_frsize


def nearly_full(path: Path) -> bool:
    """Whether the filesystem holding ``path`` has (almost) no room left."""
    st = _statvfs(path)
    if st is None:
        return False
    free, total = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
    return free < NEARLY_FULL_BYTES or (total > 0 and free < total // 100)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from or during, each once (a cycle ends the walk)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` or an exception it was raised from is the operating system's "no space left"."""
    return any((isinstance(e, OSError) and e.errno in _DISK_FULL_ERRNOS) or "no space left on device" in str(e).lower()
               for e in _chain(exc))


def _failed_file(exc: BaseException) -> Path | None:
    return next((Path(e.filename) for e in _chain(exc)
                 if isinstance(e, OSError) and e.errno in _DISK_FULL_ERRNOS and e.filename), None)


def disk_full_failure(exc: BaseException, folders: list[Path], doing: str) -> EnvironmentFailure:
    """The EnvironmentFailure for a write that failed on a full disk: names the file the OS named, else the
    fullest of ``folders`` (a runtime's own writer names none), in the OS's words."""
    where = _failed_file(exc)
    free: int | None = None
    if where is None:
        known = [(b, f) for f in folders if (b := free_bytes(f)) is not None]
        free, where = min(known, default=(None, folders[0]), key=lambda x: x[0] if x[0] is not None else 0)
    room = f" ({free // 1024} KiB free)" if free is not None and free < NEARLY_FULL_BYTES else ""
    return EnvironmentFailure(f"{where}: No space left on device{room} while {doing}",
                              hint="free space there, or point TMPDIR (temporary files) or --cache-dir "
                                   "(artifacts) at a disk with room")
