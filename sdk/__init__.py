"""edgecraft: make neural networks small and fast enough for edge hardware, and prove it before release.

The public API is re-exported lazily so that ``import edgecraft`` (and ``edgecraft --help``) stays
fast: torch, ONNX Runtime and the other runtimes are only imported when a plan actually runs.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "hookimpl": "edgecraft.hookspecs",
    "CompressionPlan": "edgecraft.plan",
    "StepSpec": "edgecraft.plan",
    "TargetSpec": "edgecraft.plan",
    "RawPlan": "edgecraft.plan",
    "Strategy": "edgecraft.strategy",
    "StrategyParams": "edgecraft.strategy",
    "Resolution": "edgecraft.strategy",
    "ResolvedStep": "edgecraft.strategy",
    "StepResult": "edgecraft.strategy",
    "Backend": "edgecraft.backend",
    "Session": "edgecraft.backend",
    "TargetInfo": "edgecraft.backend",
    "TargetOptions": "edgecraft.backend",
    "Stage": "edgecraft.models",
    "TorchModel": "edgecraft.models",
    "OnnxModel": "edgecraft.models",
    "NativeModel": "edgecraft.models",
    "ModelHandle": "edgecraft.models",
    "ModelIO": "edgecraft.modelio",
    "TensorSpec": "edgecraft.modelio",
    "ModelSourceKind": "edgecraft.model_source",
    "SourceParams": "edgecraft.plan",
    "DatasetKind": "edgecraft.datasets",
    "DatasetParams": "edgecraft.plan",
    "Dataset": "edgecraft.datasets",
    "make_dataset": "edgecraft.datasets",
    "InputError": "edgecraft.errors",
    "CompileError": "edgecraft.errors",
    "PluginError": "edgecraft.errors",
    "RuntimeFailure": "edgecraft.errors",
    "EdgecraftError": "edgecraft.errors",
    "CompileContext": "edgecraft.context",
    "RunContext": "edgecraft.context",
    "Metric": "edgecraft.metrics",
    "load_plan": "edgecraft.plan.loading",
    "validate_plan": "edgecraft.plan.loading",
    "bind_plan": "edgecraft.plan.binding",
    "build_registry": "edgecraft.registry",
    "compile_plan": "edgecraft.compile.compiler",
    "run_plan": "edgecraft.runner",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'edgecraft' has no attribute {name!r}")
    return getattr(import_module(module), name)
