"""Load a module of ``examples/transformer`` (not a package) once, under the name the benchmarks use too, or a
benchmark script of ``benchmarks/``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "transformer"


def example_module(filename: str, name: str) -> ModuleType:
    """``examples/transformer/<filename>`` imported as ``name`` (reused when already imported)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, EXAMPLE / filename)
        assert spec is not None and spec.loader is not None
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


def benchmark_module(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` imported afresh (a smoke test runs its ``main``; not kept in ``sys.modules``)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
