"""Check every path a run will write before anything is built.

A run takes minutes; discovering at its end that the report path is a directory, or at the first
artifact that the cache folder is read-only, wastes them and (before this module) ended in a
traceback. :func:`preflight_run` checks the cache folder and each report file's folder up front by
doing what the run will do: create the folder, create and delete a file in it. Failures are an
:class:`~edgecraft.errors.EnvironmentFailure` naming the path and the OS error (exit code 3).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from edgecraft.errors import EnvironmentFailure


def _os_words(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def check_writable_dir(folder: Path, what: str) -> None:
    """``folder`` is a directory that accepts a new file, or can be created as one.

    Nothing is created: a run that fails a later check (a bad reference report) leaves no trace.
    An existing folder is probed by creating and deleting a file (the only test that sees a full
    read-only mount or an ACL); a missing one by the access rights of its nearest existing ancestor.
    """
    if folder.exists():
        if not folder.is_dir():
            raise EnvironmentFailure(f"{what} {folder}: not a directory (a file is in the way)")
        try:
            fd, probe = tempfile.mkstemp(prefix=".edgecraft-probe-", dir=folder)
        except OSError as exc:
            raise EnvironmentFailure(f"{what} {folder}: cannot write in it: {_os_words(exc)}") from exc
        os.close(fd)
        os.unlink(probe)
        return
    ancestor = folder.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise EnvironmentFailure(f"{what} {folder}: cannot be created: {ancestor} is a file, not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise EnvironmentFailure(f"{what} {folder}: cannot be created: {ancestor} is not writable "
                                 f"({'read-only file system' if _read_only(ancestor) else 'permission denied'})")


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def check_writable_file(path: Path, what: str) -> None:
    """``path`` can be (re)placed: it is not a directory and its folder accepts new files."""
    if path.is_dir():
        raise EnvironmentFailure(f"{what} {path}: is a directory, not a file path")
    check_writable_dir(path.parent, f"{what} folder")


def preflight_reports(files: Any) -> None:
    """Check every report path of ``files`` (a ReportFiles)."""
    for option, path in (("--report-json", files.json), ("--junit", files.junit), ("--markdown", files.markdown),
                         ("--html", files.html)):
        if path is not None:
            check_writable_file(Path(path), f"{option} report")


def preflight_run(files: Any, cache_dir: Path | None) -> None:
    """Check the cache folder and every report path before building."""
    from edgecraft.assembly.artifacts import default_cache_dir

    check_writable_dir(Path(cache_dir) if cache_dir is not None else default_cache_dir(), "cache folder")
    preflight_reports(files)
