"""Artifacts on disk and the cache that holds them, written atomically.

An artifact is a folder: the backend's files, the ONNX graph it was built from (``lineage/``) and
``manifest.json`` (the compiled plan, file hashes and sizes, step details). Building happens in a
temporary sibling folder that is renamed into place only when complete, so an interrupted or
failed build never leaves a half-written artifact where a later run would trust it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecraft.loading import file_sha256

MANIFEST = "manifest.json"
ARTIFACT_SCHEMA_ID = "edgecraft.artifact/v1"


def default_cache_dir() -> Path:
    env = os.environ.get("EDGECRAFT_CACHE_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgecraft" / "artifacts"


@dataclass(frozen=True)
class Artifact:
    """A complete artifact folder and its manifest."""

    path: Path
    manifest: dict[str, Any]

    @property
    def files(self) -> list[Path]:
        return [self.path / f["path"] for f in self.manifest["files"]]

    @property
    def size_bytes(self) -> int:
        return int(self.manifest["size_bytes"])

    @property
    def key(self) -> str:
        return str(self.manifest["key"])

    @classmethod
    def open(cls, path: Path) -> Artifact:
        return cls(path, json.loads((path / MANIFEST).read_text()))


def write_manifest(folder: Path, *, key: str, compiled: dict[str, Any], files: list[Path], size_bytes: int,
                   steps: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    manifest = {
        "schema": ARTIFACT_SCHEMA_ID,
        "key": key,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "compiled_plan": compiled,
        "files": [{"path": str(f.relative_to(folder)), "bytes": f.stat().st_size, "sha256": file_sha256(f)}
                  for f in files],
        "size_bytes": size_bytes,
        "steps": steps,
        **(extra or {}),
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
    return manifest


class ArtifactCache:
    """Artifacts keyed by compiled-plan hash under one root folder."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    def path_for(self, key: str) -> Path:
        return self.root / key[:2] / key

    def lookup(self, key: str) -> Artifact | None:
        folder = self.path_for(key)
        if (folder / MANIFEST).is_file():
            try:
                return Artifact.open(folder)
            except (OSError, json.JSONDecodeError, KeyError):
                return None  # unreadable: rebuilt below and replaced atomically
        return None

    @contextmanager
    def building(self, key: str) -> Iterator[Path]:
        """Yield a temporary folder to build into; on success it becomes the artifact, else it vanishes."""
        final = self.path_for(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".building-{key[:12]}-", dir=final.parent))
        try:
            yield tmp
            if not (tmp / MANIFEST).is_file():
                raise RuntimeError("artifact build finished without a manifest")
            if final.exists():
                shutil.rmtree(final)  # stale or unreadable entry with the same key
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
