"""Loading a sibling benchmark module by file.

benchmarks/ is not a package, and its ``transformers.py`` would shadow Hugging Face's library if this folder
stayed on ``sys.path``; the transformer benchmarks therefore import each other through :func:`load` (and
import this module with the folder on the path only for that one import).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def load(name: str, path: Path) -> ModuleType:
    """The module at ``path`` under ``name`` (loaded once per process: a second call returns the first)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
