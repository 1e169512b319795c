"""Facts derived from an artifact's files, kept beside the artifact so a later run on it reads them back.

Why: every gate run counts the compute of each artifact it measures (ONNX shape inference on the lineage
graph, plus the graph the runtime executes, which takes a session built and run once). That was ~0.65 s of a
3.9 s gate run of a ResNet-18-sized model on an idle machine, and seconds on a loaded one: in
``benchmarks/gate_cost.py`` (160 gate runs on two unchanging artifacts) and in a user's repeated gate on the
same cached artifact it is the same count every time (issue 25). A count cannot change while the artifact's
files do not, so it is stored once in ``<artifact>/facts/<name>-<key>.json`` and read back.

**The key** covers everything the fact depends on: the bytes of the artifact's ``manifest.json`` (each file's
size and sha256, the compiled plan, the build time: a rebuilt entry never matches a fact of the old one) and
the caller's parts (input shapes, target, options, threads, the feeds, the runtime's version, the digest of
the code that derives the fact). The cache verifies an entry's files against its manifest before a run uses it
(:mod:`edgecraft.assembly.cache_verify`), so the manifest stands for the files; a folder without a manifest
gets no key, and its facts are derived every time.

**Trust**: the facts folder is not in the manifest, so verification ignores it (and ``cache clear`` removes it
with the entry). A fact file that cannot be read, is not JSON, was written for another key, or whose value
the caller's validation refuses is ignored, derived again and rewritten; one that cannot be written (a
read-only cache, a full disk) is simply not kept. Writes are atomic (a temporary file renamed into place), so
concurrent runs on one entry read either nothing or a whole fact.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from collections.abc import Iterable, Mapping
from contextlib import suppress
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

FACTS_DIR = "facts"
SCHEMA = "edgecraft.artifact-fact/v1"
#: A fact file larger than this is not read (facts are small JSON; anything bigger is not ours).
MAX_FACT_BYTES = 4 * 1024 * 1024


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fact_key(folder: Path, parts: Mapping[str, Any]) -> str | None:
    """The key of a fact of the artifact in ``folder`` derived with ``parts``; None when it has no manifest."""
    try:
        manifest = (Path(folder) / "manifest.json").read_bytes()
    except OSError:
        return None
    text = json.dumps({"schema": SCHEMA, "manifest": _sha256(manifest), **parts}, sort_keys=True, default=str)
    return _sha256(text.encode())


def _fact_path(folder: Path, name: str, key: str) -> Path:
    return Path(folder) / FACTS_DIR / f"{name}-{key[:32]}.json"


def load_fact(folder: Path, name: str, key: str | None) -> Any | None:
    """The value stored for ``key``, or None (no key, absent, unreadable, garbage, another key's)."""
    if key is None:
        return None
    path = _fact_path(folder, name, key)
    try:
        if path.stat().st_size > MAX_FACT_BYTES:
            return None
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(stored, dict) or stored.get("schema") != SCHEMA or stored.get("key") != key:
        return None
    return stored.get("value")


def store_fact(folder: Path, name: str, key: str | None, value: Any) -> bool:
    """Keep ``value`` (JSON-able) for ``key``; False when it could not be written (never raises for that)."""
    if key is None:
        return False
    path = _fact_path(folder, name, key)
    tmp: str | None = None
    try:
        path.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"schema": SCHEMA, "key": key, "value": value}, out)
        os.replace(tmp, path)
        return True
    except (OSError, TypeError, ValueError):
        if tmp is not None:
            with suppress(OSError):
                os.unlink(tmp)
        return False


def feeds_digest(feeds: Mapping[str, Any]) -> str:
    """Names, dtypes, shapes and bytes of input arrays (a fact read by running the model depends on them)."""
    h = hashlib.sha256()
    for name in sorted(feeds):
        array = np.ascontiguousarray(np.asarray(feeds[name]))
        h.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        h.update(array.tobytes())
    return h.hexdigest()


@lru_cache(maxsize=1)
def machine_fingerprint() -> str:
    """This machine's architecture and CPU feature flags: a fact read by running the model on this CPU (the
    executed graph, the kernels a session picks) depends on them."""
    from edgecraft.cpu import cpu_flags

    return f"{platform.machine()}|{','.join(sorted(cpu_flags()))}"


@lru_cache(maxsize=64)
def _files_digest(files: tuple[str, ...]) -> str:
    h = hashlib.sha256()
    for file in files:
        h.update(file.encode())
        try:
            h.update(Path(file).read_bytes())
        except OSError:
            h.update(b"<unreadable>")
    return h.hexdigest()


def code_digest(modules: Iterable[Any], folders: Iterable[Path] = ()) -> str:
    """sha256 of the source files of ``modules`` and of every ``*.py`` in ``folders`` (once per process): a fact
    derived by other code (an edited counter, an upgraded backend) gets another key."""
    files = {str(Path(m.__file__).resolve()) for m in modules if getattr(m, "__file__", None)}
    for folder in folders:
        files.update(str(p.resolve()) for p in Path(folder).glob("*.py"))
    return _files_digest(tuple(sorted(files)))
