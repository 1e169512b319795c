"""A test double for unit-testing a strategy's ``apply()``: the step, the model handle and the RunContext
the builder would pass, for a small model and dataset, without running a whole plan.

::

    from edgecraft.testing import apply_inputs

    def test_apply_halves_the_weights(tmp_path):
        inputs = apply_inputs("my-strategy", params={"factor": 2}, work_dir=tmp_path)
        result = inputs.apply()
        assert result.details["factor"] == 2

It uses the real machinery (the plan validator, the compiler, the builder's own context), so what
``apply()`` sees here is what it sees in a run: ``ctx.target``, ``ctx.dataset("kit")``, ``ctx.io``, and
for accuracy-aware steps an evaluator with the baseline artifact built.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from edgecraft.testing.models import CNN, KitModel


def kit_plan(strategy: str, params: Mapping[str, Any], model: KitModel, folder: Path, targets: list[str],
             options: Mapping[str, Mapping[str, Any]], data: Mapping[str, np.ndarray] | None = None) -> dict[str, Any]:
    """The plan the kit runs a strategy in: ``model`` with one step, one dataset ``kit`` written to ``folder``
    (``data``: the arrays to write, every model input plus labels ``y``; default: the model's random feeds)."""
    if data is None:
        model.write_dataset(folder / "kit.npz")
    else:
        np.savez(folder / "kit.npz", **dict(data))
    return {"name": f"conformance-{strategy}-{model.name}", "model": dict(model.source),
            "data": {"kit": {"kind": "npz", "path": "kit.npz"}},
            "evaluation": {"dataset": "kit", "metrics": ["top1"], "batch_size": 8},
            "latency": {"warmup": 0, "repeats": 5, "rounds": 1, "threads": 1},
            "steps": [{"strategy": strategy, "params": dict(params)}],
            "targets": [{"target": t, "options": dict(options.get(t, {}))} for t in targets]}


@dataclass
class ApplyInputs:
    """What the builder passes to ``Strategy.apply(step, model, ctx)``, and the strategy to call it on."""

    strategy: Any
    step: Any
    model: Any
    ctx: Any

    def apply(self) -> Any:
        """Call the strategy's ``apply()`` once, as the builder would, and return its StepResult unchecked."""
        return self.strategy.apply(self.step, self.model, self.ctx)


def apply_inputs(strategy: str, *, work_dir: Path, model: KitModel = CNN, data: Mapping[str, np.ndarray] | None = None,
                 params: Mapping[str, Any] | None = None, target: str = "ort-cpu",
                 options: Mapping[str, Any] | None = None, plugins: Iterable[Any] = ()) -> ApplyInputs:
    """Build the step, the model handle (at the step's stage) and the RunContext for one ``apply()`` call.

    ``model``: one of the kit's models (:data:`~edgecraft.testing.CNN`, :data:`~edgecraft.testing.MULTI`).
    ``data``: dataset ``kit`` as arrays (every model input plus labels ``y``; default: 16 random samples).
    ``work_dir``: a folder for the plan's files and the step's outputs (pytest's ``tmp_path``).
    ``plugins``: plugin modules registered besides the installed ones. A target that refuses the step
    raises its CompileError, as a plan would.
    """
    from edgecraft.assembly.artifacts import ArtifactCache
    from edgecraft.compile.checks import prepare
    from edgecraft.compile.compiler import compile_plan
    from edgecraft.execute.target import TargetServices
    from edgecraft.models import NativeModel, OnnxModel, TorchModel
    from edgecraft.progress import NullProgress
    from edgecraft.registry import build_registry
    from edgecraft.strategy import Stage

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    registry = build_registry(extra_plugins=list(plugins))
    plan = kit_plan(strategy, params or {}, model, work_dir, [target], {target: dict(options or {})}, data)
    run = prepare(plan, registry, work_dir)
    compiled = compile_plan(run.plan, target, registry, loader=run.loader, datasets=run.datasets)
    services = TargetServices.of(run, compiled, ArtifactCache(work_dir / "cache"), NullProgress())
    builder = services.builder
    if builder.evaluator is not None:  # accuracy-aware steps measure candidates against the baseline
        services.evaluator.use_baseline(builder.baseline_artifact(compiled)[0])
    step = compiled.steps[0]
    steps_dir = work_dir / "steps"
    steps_dir.mkdir(exist_ok=True)
    handle: TorchModel | OnnxModel | NativeModel = run.loader.fresh()
    if step.stage != Stage.TORCH:
        handle = builder.artifact_io.to_onnx(handle, steps_dir)
    if step.stage == Stage.NATIVE:
        handle = builder.artifact_io.to_native(handle, steps_dir)
    ctx = builder._run_context(step, steps_dir)
    return ApplyInputs(registry.strategy(strategy), step, handle, ctx)
