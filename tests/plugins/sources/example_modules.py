"""Load a module of ``examples/transformer`` (not a package) once, under the name the benchmarks use too."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "transformer"


def example_module(filename: str, name: str) -> ModuleType:
    """``examples/transformer/<filename>`` imported as ``name`` (reused when already imported)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, EXAMPLE / filename)
        assert spec is not None and spec.loader is not None
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]
