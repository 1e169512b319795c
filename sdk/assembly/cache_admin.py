"""``edgecraft cache info|clear``: what the artifact cache holds, and emptying it safely.

Clearing deletes only what edgecraft wrote: entry folders named by their key
(``<2 hex>/<64 hex>``), unfinished builds (``.building-*``) and their lock files. A cache folder
pointed by mistake at a folder holding other files (``--cache-dir ~``) loses none of them.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecraft.assembly.artifacts import MANIFEST, default_cache_dir
from edgecraft.assembly.cache_verify import BUILDING_PREFIX, LOCK_SUFFIX

_SHARD = re.compile(r"^[0-9a-f]{2}$")
_KEY = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class CacheEntry:
    key: str
    path: Path
    bytes: int
    created: str | None = None
    plan: str | None = None
    target: str | None = None
    steps: list[str] = field(default_factory=list)


@dataclass
class CacheInfo:
    path: Path
    entries: list[CacheEntry]
    #: Unfinished builds (a running build, or one killed before it finished).
    partial: list[Path]

    @property
    def bytes(self) -> int:
        return sum(e.bytes for e in self.entries)

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "entries": len(self.entries), "bytes": self.bytes,
                "partial_builds": len(self.partial),
                "items": [{"key": e.key, "bytes": e.bytes, "created": e.created, "plan": e.plan,
                           "target": e.target, "steps": e.steps, "path": str(e.path)} for e in self.entries]}


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _entry(folder: Path) -> CacheEntry:
    entry = CacheEntry(folder.name, folder, _size(folder))
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        compiled = manifest.get("compiled_plan", {})
        entry.created = manifest.get("created")
        entry.plan = compiled.get("plan_name")
        entry.target = compiled.get("target")
        entry.steps = [s.get("strategy", "?") for s in compiled.get("steps", [])]
    except (OSError, ValueError, AttributeError):
        pass  # listed with its size; its verification is the run's business
    return entry


def _shards(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and _SHARD.match(p.name))


def cache_info(root: Path | None = None) -> CacheInfo:
    """Every entry under ``root`` (default: the configured cache folder), newest first."""
    root = Path(root) if root is not None else default_cache_dir()
    entries: list[CacheEntry] = []
    partial: list[Path] = []
    for shard in _shards(root):
        for child in shard.iterdir():
            if child.is_dir() and _KEY.match(child.name):
                entries.append(_entry(child))
            elif child.is_dir() and child.name.startswith(BUILDING_PREFIX):
                partial.append(child)
    entries.sort(key=lambda e: e.created or "", reverse=True)
    return CacheInfo(root, entries, partial)


def clear_cache(root: Path | None = None) -> tuple[int, int]:
    """Delete every entry and unfinished build under ``root``; return (entries removed, bytes freed)."""
    info = cache_info(root)
    for entry in info.entries:
        shutil.rmtree(entry.path, ignore_errors=True)
    for folder in info.partial:
        shutil.rmtree(folder, ignore_errors=True)
    for shard in _shards(info.path):
        for lock in shard.glob(f"{BUILDING_PREFIX}*{LOCK_SUFFIX}"):
            lock.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            shard.rmdir()  # only when empty
    return len(info.entries), info.bytes
