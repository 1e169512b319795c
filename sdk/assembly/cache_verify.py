"""Trust nothing in the cache that the manifest does not vouch for; collect what killed runs left.

**Verification.** The cache is input the gate trusts: a cached ``model.onnx`` with flipped bytes was
measured as the compressed model and the run exited 0; a truncated one failed every later run
with exit 3 and was never rebuilt; a cached TVM library is native code that gets loaded. The
manifest records every file's size and sha256, so :func:`verify_artifact` compares them before an
entry is used; a mismatch is a reason string, and the caller rebuilds the entry.

**Leftovers.** A build happens in ``.building-*`` beside its cache entry and in an
``edgecraft-work-*`` folder in the temp dir. SIGKILL (or a crash) skips the cleanup, so each such
folder gets a sibling ``<folder>.lock`` file held with ``fcntl.flock`` for the folder's lifetime.
:func:`sweep_stale` removes a folder only if it can take that lock itself (the kernel drops a
dead process's locks; a live builder still holds it), or, for a folder without a lock file (made
by an older edgecraft, or killed in the microseconds before locking), only when it is a day old.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from edgecraft.loading import file_sha256
from edgecraft.safe_text import bounded_repr

#: Prefixes of the temp-dir folders builds use (the work folder, the accuracy-aware evaluation folder).
WORK_PREFIXES = ("edgecraft-work-", "edgecraft-eval-")
BUILDING_PREFIX = ".building-"
LOCK_SUFFIX = ".lock"
#: A folder without a lock file is only collected when older than this (seconds).
UNLOCKED_GRACE_S = 24 * 3600


def verify_artifact(folder: Path, manifest: Any) -> str | None:
    """None when every file the manifest lists is in ``folder`` with its recorded size and sha256;
    otherwise why not (the first problem found)."""
    if not isinstance(manifest, dict):
        return f"manifest.json is {type(manifest).__name__}, not an object"
    files = manifest.get("files")
    if not isinstance(files, list) or not files:
        return "manifest.json lists no files"
    if not isinstance(manifest.get("size_bytes"), int) or not isinstance(manifest.get("key"), str):
        return "manifest.json lacks size_bytes or key"
    root = folder.resolve()
    for entry in files:
        if not isinstance(entry, dict) or not all(k in entry for k in ("path", "bytes", "sha256")):
            return f"manifest.json has a malformed file entry {bounded_repr(entry, 60)}"
        rel = entry["path"]
        if not isinstance(rel, str) or Path(rel).is_absolute():
            return f"manifest.json lists a file outside the entry: {bounded_repr(rel, 60)}"
        path = folder / rel
        if not path.resolve().is_relative_to(root):
            return f"manifest.json lists a file outside the entry: {bounded_repr(rel, 60)}"
        try:
            size = path.stat().st_size
        except OSError:
            return f"{rel} is missing"
        if not path.is_file():
            return f"{rel} is not a file"
        if size != entry["bytes"]:
            return f"{rel} has {size} bytes, the manifest says {bounded_repr(entry['bytes'], 20)} (truncated, changed)"
        try:
            digest = file_sha256(path)
        except OSError as exc:
            return f"{rel} cannot be read ({exc.strerror or type(exc).__name__})"
        if digest != entry["sha256"]:
            return f"{rel} does not match its sha256 in the manifest (corrupted or changed)"
    return None


def read_manifest(folder: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The manifest of ``folder`` and None, or None and why it cannot be used."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        return None, f"manifest.json is unreadable ({type(exc).__name__})"
    reason = verify_artifact(folder, manifest)
    return (None, reason) if reason else (manifest, None)


# ---------------------------------------------------------------------------- liveness locks
def _lock_path(folder: Path) -> Path:
    return folder.with_name(folder.name + LOCK_SUFFIX)


@contextmanager
def held_lock(folder: Path) -> Iterator[None]:
    """Hold ``<folder>.lock`` (flock, exclusive) while inside: proof to sweepers that ``folder`` is in use."""
    lock = _lock_path(folder)
    fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        with suppress(OSError):
            os.unlink(lock)
        os.close(fd)


@contextmanager
def work_dir(prefix: str = WORK_PREFIXES[0]) -> Iterator[str]:
    """Like ``tempfile.TemporaryDirectory(prefix=...)``, plus a held lock so a later run's sweep can
    tell a killed run's folder from a live one."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        with held_lock(path):
            yield str(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _is_abandoned(folder: Path) -> bool:
    lock = _lock_path(folder)
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        try:
            return time.time() - folder.stat().st_mtime > UNLOCKED_GRACE_S
        except OSError:
            return False
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False  # a live process holds it
    try:
        young = time.time() - os.fstat(fd).st_mtime < 60
    except OSError:
        young = True
    if young:  # its builder may be between creating the lock file and locking it
        os.close(fd)
        return False
    with suppress(OSError):
        os.unlink(lock)  # ours now: the owner is gone
    os.close(fd)
    return True


def sweep_stale(cache_root: Path | None = None, temp_dir: Path | None = None) -> list[Path]:
    """Remove ``.building-*`` folders under ``cache_root`` and edgecraft work folders in ``temp_dir``
    whose builders are gone; return what was removed. Never raises (it is housekeeping)."""
    candidates: list[Path] = []
    try:
        if cache_root is not None and cache_root.is_dir():
            for shard in cache_root.iterdir():
                if shard.is_dir() and not shard.is_symlink():
                    candidates += [p for p in shard.iterdir() if p.name.startswith(BUILDING_PREFIX) and p.is_dir()]
        tmp = Path(temp_dir or tempfile.gettempdir())
        candidates += [p for p in tmp.iterdir() if p.name.startswith(WORK_PREFIXES) and p.is_dir()
                       and not p.is_symlink()]
    except OSError:
        pass
    removed = []
    for folder in candidates:
        if _is_abandoned(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed
