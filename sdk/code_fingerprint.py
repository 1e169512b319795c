"""The source code a torch model runs, hashed for the artifact cache key.

Why: a torch model's cache key used to cover ``repr(module)`` and the weights, not the code ``forward``
runs. Editing a helper module the forward calls (40x the work) left the key unchanged, and the cached
artifact passed a latency contract a fresh build fails. Here the key also covers, by content:

- the file of every class in the module tree and of their base classes (where ``forward`` is defined),
  torch's own included (a torch upgrade changes them);
- every module already imported whose file lies under the plan's folder: the factory's file and every
  project-local module it or the forward reads (helpers, constants).

A class without a source file (defined in ``__main__`` of an interactive session, built with ``type()``)
cannot be keyed: :func:`code_fingerprint` returns ``None`` and the caller does not reuse a cached artifact.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
import sysconfig
from pathlib import Path
from typing import Any

#: Folders holding installed packages: their modules are keyed only when a class of the model lives there.
_INSTALLED = tuple(str(Path(p).resolve()) for p in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})


def code_fingerprint(module: Any, project_dir: Path) -> tuple[str | None, list[str]]:
    """(sha256 of the code's files, the files) for a torch module; (None, why) when some code has no file."""
    files: set[Path] = set()
    unkeyable: list[str] = []
    for sub in module.modules():
        for cls in type(sub).__mro__:
            if cls.__module__ == "builtins":
                continue
            source = _class_file(cls)
            if source is None:
                unkeyable.append(f"{cls.__module__}.{cls.__qualname__}")
            else:
                files.add(source)
    project = project_dir.resolve()
    for name, mod in list(sys.modules.items()):
        if name == "edgecraft" or name.startswith("edgecraft."):
            continue  # edgecraft and its plugins are keyed by their versions (a plan may sit in a checkout)
        path = getattr(mod, "__file__", None)
        if not isinstance(path, str) or not path.endswith(".py") or not Path(path).is_absolute() \
                or not Path(path).is_file():
            continue  # no file, or a made-up one (torch._classes says "_classes.py"): not code loaded from disk
        resolved = Path(path).resolve()
        if resolved.is_relative_to(project) and not str(resolved).startswith(_INSTALLED) and \
                ".venv" not in resolved.relative_to(project).parts:
            files.add(resolved)
    if unkeyable:
        return None, sorted(set(unkeyable))
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(str(path).encode() + b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError:
            return None, [f"{path} (unreadable)"]
    return digest.hexdigest(), sorted(str(p) for p in files)


def _class_file(cls: type) -> Path | None:
    mod = sys.modules.get(cls.__module__)
    path = getattr(mod, "__file__", None)
    if isinstance(path, str) and path.endswith(".py") and Path(path).is_file():
        return Path(path).resolve()
    try:
        found = inspect.getsourcefile(cls)
    except (TypeError, OSError, KeyError):  # KeyError: its module is no longer in sys.modules
        return None
    return Path(found).resolve() if found and Path(found).is_file() else None
