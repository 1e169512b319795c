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

from edgecraft.assembly.cache_verify import BUILDING_PREFIX, held_lock, read_manifest, sweep_stale
from edgecraft.errors import EdgecraftError, EnvironmentFailure, disk_full_failure, is_disk_full, nearly_full
from edgecraft.loading import file_sha256
from edgecraft.settings import default_cache_dir  # the folder the environment names; also imported from here

MANIFEST = "manifest.json"
ARTIFACT_SCHEMA_ID = "edgecraft.artifact/v1"


@dataclass(frozen=True)
class Artifact:
    """A complete artifact folder and its manifest."""

    path: Path
    manifest: dict[str, Any]
    #: Set when this run rebuilt the entry because the cached one failed verification (for the report).
    rebuilt_reason: str | None = None

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
    """Artifacts keyed by compiled-plan hash under one root folder.

    Entries are verified against their manifest (sizes and sha256) on every lookup; one that fails
    is reported (:attr:`rejected`) and rebuilt. See :mod:`edgecraft.assembly.cache_verify`.
    """

    def __init__(self, root: Path | None = None, *, reuse: bool = True) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        #: False (``--no-cache``): every entry is rebuilt once in this run and replaces what the cache held.
        self.reuse = reuse
        #: key -> why the cached entry was not used (it failed verification), for progress and the report.
        self.rejected: dict[str, str] = {}
        self._swept = False
        self._built: set[str] = set()

    def path_for(self, key: str) -> Path:
        return self.root / key[:2] / key

    def lookup(self, key: str) -> Artifact | None:
        """The verified entry for ``key``; None when absent or when it fails verification (see ``rejected``).

        The first lookup sweeps what killed runs left (``.building-*`` here, work folders in the temp dir)
        when no live process holds them: a run served entirely from the cache cleans up too."""
        self._sweep_once()
        folder = self.path_for(key)
        if not self.reuse and key not in self._built:
            return None  # --no-cache: only what this run built counts
        if not (folder / MANIFEST).is_file():
            if folder.exists():
                self.rejected[key] = "the entry has no manifest.json"
            return None
        manifest, reason = read_manifest(folder)
        if manifest is None:
            self.rejected[key] = reason or "unusable"
            return None
        return Artifact(folder, manifest)

    def _sweep_once(self) -> None:
        if not self._swept:
            self._swept = True
            sweep_stale(self.root)

    @contextmanager
    def building(self, key: str) -> Iterator[Path]:
        """Yield a temporary folder to build into; on success it becomes the artifact, else it vanishes.

        The folder is locked (``<folder>.lock``, flock) while building, so a later run's sweep removes
        it only once this process is gone (SIGKILL leaves it behind). On success it is installed by
        :meth:`_install`.
        """
        self._sweep_once()
        final = self.path_for(key)
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f"{BUILDING_PREFIX}{key[:12]}-", dir=final.parent))
        except OSError as exc:
            raise EnvironmentFailure(f"cache folder {final.parent}: cannot create a build folder: "
                                     f"{exc.strerror or type(exc).__name__}") from exc
        try:
            with held_lock(tmp):
                try:
                    yield tmp
                except Exception as exc:
                    # A full disk, in whatever words the writer used (ONNX Runtime: "Protobuf serialization
                    # failed"): name the disk, not the runtime. Judged before the partial build is removed.
                    if is_disk_full(exc) or nearly_full(tmp):
                        raise disk_full_failure(exc, [tmp.parent, Path(tempfile.gettempdir())],
                                                f"building artifact {key[:12]} (the partial build was "
                                                "removed)") from exc
                    if not isinstance(exc, OSError) or isinstance(exc, EdgecraftError):
                        raise
                    where = exc.filename or tmp  # read-only, permissions
                    raise EnvironmentFailure(f"{where}: {exc.strerror or type(exc).__name__} while building "
                                             f"artifact {key[:12]} (the partial build was removed)") from exc
                if not (tmp / MANIFEST).is_file():
                    raise RuntimeError("artifact build finished without a manifest")
                self._install(tmp, final, replace=not self.reuse)
                self._built.add(key)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    @staticmethod
    def _install(tmp: Path, final: Path, *, replace: bool = False) -> None:
        """Move the finished build into place; safe with concurrent writers and readers of the same key.

        ``rename(2)`` of a directory onto a missing (or empty) one is atomic, onto a non-empty one it
        fails. So: try the rename; if an entry is there and verifies, another writer finished the same
        build first and ours is dropped (its readers keep their files). Only an entry that fails
        verification is replaced, by renaming it aside first (one atomic step, so no two writers can
        delete each other's folder, as the old delete-then-rename did with FileNotFoundError) and then
        renaming ours in; if yet another writer got in between, theirs stays. With ``replace``
        (``--no-cache``) a verified entry is replaced too: the point is to use what this run built.
        """
        try:
            os.rename(tmp, final)
            return
        except OSError:
            pass
        if not replace and final.is_dir() and read_manifest(final)[0] is not None:
            return  # a concurrent writer's complete, verified build: keep it
        aside = final.with_name(f"{BUILDING_PREFIX}{final.name[:12]}-replaced-{os.getpid()}-{time.monotonic_ns()}")
        try:
            os.rename(final, aside)
        except FileNotFoundError:
            pass  # someone else moved it aside already
        except NotADirectoryError:
            final.unlink(missing_ok=True)  # a stray file where the entry belongs
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final.is_dir() and read_manifest(final)[0] is not None):
                raise
        finally:
            shutil.rmtree(aside, ignore_errors=True)
