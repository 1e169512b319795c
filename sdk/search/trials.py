"""One trial of a search: one recipe on one target, run through an executor like any ``edgecraft run``.

A trial's recipe is validated and compiled here (a recipe that does not compile is a failed trial, in
seconds), then handed to an :class:`~edgecraft.execute.Executor`, the same interface ``run`` uses:
the in-process one for a search here (:func:`run_trial_here`), a Ray executor for ``search --ray``
(:mod:`edgecraft.search.parallel`). So a trial is built, evaluated, timed and judged by the very code
of a run, wherever it goes.

**Early stop.** In this process, when a trial's torch-stage steps are done (before export, int8 and
timing), its accuracy on the target is measured; if it already misses a contract that reads a metric
by more than ``search.prune_slack``, the trial is stopped: post-training int8 does not win accuracy
back. (On a cluster the torch stage runs inside the node's build task, out of the search's reach.)
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecraft.assembly.artifacts import ArtifactCache
from edgecraft.compile.checks import RunInputs, compile_all
from edgecraft.compile.compiler import CompiledPlan
from edgecraft.errors import EdgecraftError
from edgecraft.execute import Executor, ignore_target
from edgecraft.execute.local import InProcessExecutor
from edgecraft.plan import CompressionPlan
from edgecraft.plan.loading import validate_plan
from edgecraft.progress import Progress
from edgecraft.search.records import (
    Outcome,
    TrialStopped,
    failed_outcome,
    objective_values,
    record_from_report,
    stopped_values,
    violation,
)
from edgecraft.search.setup import SearchSetup, run_inputs
from edgecraft.search.space import apply_recipe, for_target
from edgecraft.verify.gate import BASELINE, COMPRESSED
from edgecraft.verify.judging import Measured, of_measure

if TYPE_CHECKING:
    from edgecraft.assembly.builder import Builder, TorchStageDone
    from edgecraft.models import TorchModel

#: Metrics measured after a torch stage, by (target, torch key): a stage shared by several recipes is
#: evaluated once.
EarlyMetrics = dict[tuple[str, str], dict[str, float]]


@dataclass
class Trial:
    """One trial's compiled recipe, ready for an executor."""

    label: str
    base: dict[str, Any]  # {"plan": raw recipe plan, "target": label}
    plan: CompressionPlan
    run: RunInputs
    compiled: CompiledPlan


def compile_trial(setup: SearchSetup, label: str, values: dict[str, Any],
                  early: tuple[Progress, EarlyMetrics] | None = None) -> Trial | Outcome:
    """Validate and compile the recipe ``values`` on ``label``; a recipe that does not is a failed trial.

    ``early``: stop the trial after its torch stage when it already misses a contract (in this process)."""
    raw = apply_recipe(for_target(setup.raw, label), setup.dims[label], values)
    base = {"plan": raw, "target": label}
    try:
        plan = validate_plan(raw, setup.registry, source=f"recipe on {label}")
        hook = _early_stop(setup, label, plan, *early) if early is not None else None
        run = run_inputs(setup.run, plan, hook)
        compiled = compile_all(run, [label])[label]
    except EdgecraftError as exc:
        # a search whose every trial failed that way exits with the trials' exit code
        return failed_outcome(base, str(exc), exc.exit_code)
    return Trial(label, base, plan, run, compiled)


def execute_trial(setup: SearchSetup, trial: Trial, executor: Executor, cache: ArtifactCache, progress: Progress,
                  *, remote: bool = False) -> Outcome:
    """Build, measure and judge one compiled recipe through ``executor``; (record, state, objective values).

    ``remote``: the executor sends it to a cluster; the record says where it ran and when, and any error the
    executor does not map is this trial's failure, not the search's."""
    started = time.time()

    def clock() -> dict[str, Any]:
        return {"wall_clock": [started, time.time()]} if remote else {}

    try:
        [report] = executor.run_targets(trial.run, {trial.label: trial.compiled}, [trial.label], cache, progress,
                                        None, ignore_target)
    except TrialStopped as stop:
        v = stop.verdict
        record = {**trial.base, "state": "pruned", "reason": v.detail, "metrics": stop.metrics, "passed": False,
                  "verdicts": [{"name": v.name, "kind": v.kind, "status": "fail", "passed": False,
                                "measured": v.measured, "bound": v.bound, "unit": v.unit,
                                "detail": f"after the torch stage: {v.detail}", "violation": violation(v)}]}
        return record, "pruned", stopped_values(trial.plan, setup.registry, setup.spec, trial.label, stop)
    except EdgecraftError as exc:
        return failed_outcome(trial.base, str(exc), exc.exit_code, **clock())
    except Exception as exc:
        if not remote:
            raise
        return failed_outcome(trial.base, f"{type(exc).__name__}: {exc}", 3, **clock())
    record = {**trial.base, **record_from_report(report, trial.plan, setup.registry, setup.spec, trial.label)}
    if remote:
        record.update(built_on=report.built_on, measured_on=report.measured_on, retries=report.retries, **clock())
    return record, "complete", objective_values(record, setup.spec)


def run_trial_here(setup: SearchSetup, label: str, values: dict[str, Any], cache: ArtifactCache, progress: Progress,
                   early: EarlyMetrics) -> Outcome:
    """Run one recipe on one target in this process, through the in-process executor."""
    trial = compile_trial(setup, label, values, (progress, early))
    if not isinstance(trial, Trial):
        return trial
    return execute_trial(setup, trial, InProcessExecutor(), cache, progress)


def _early_stop(setup: SearchSetup, label: str, plan: CompressionPlan, progress: Progress,
                early: EarlyMetrics) -> TorchStageDone:
    """The torch-stage hook that stops a trial already missing a contract that reads a metric."""
    contracts = of_measure(setup.registry, plan.contracts_for(label), ["metrics"])
    slack = setup.spec.prune_slack

    def torch_stage_done(builder: Builder, handle: TorchModel, key: str) -> None:
        if not contracts:
            return
        evaluator = builder.evaluator
        assert evaluator is not None, "a contract that reads a metric needs evaluation.dataset"
        memo_key = (label, key)
        if memo_key not in early:
            progress.status(f"{label}: accuracy after the torch stage (early stop check)")
            early[memo_key] = evaluator.evaluate(handle)
        metrics = early[memo_key]
        measured = Measured(plan, label, builder.view.emulated, setup.registry.metric,
                            metrics={BASELINE: evaluator.baseline_metrics(), COMPRESSED: metrics})
        for contract, kind in contracts:
            verdict = kind.judge(contract, measured)
            if verdict.measured > verdict.bound + slack:
                raise TrialStopped(verdict, metrics, builder.baseline_size_bytes)

    return torch_stage_done


def run_trial_isolated(setup: SearchSetup, label: str, values: dict[str, Any], cache_dir: Path | None) -> Outcome:
    """Run one trial in a child process (``search.isolate``): a native crash there is this trial's failure."""
    with tempfile.TemporaryDirectory(prefix="edgecraft-trial-") as tmp:
        job, result = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job.write_text(json.dumps({"plan": str(setup.plan_path.resolve()), "label": label, "values": values,
                                   "cache_dir": str(cache_dir) if cache_dir else None}))
        proc = subprocess.run([sys.executable, "-m", "edgecraft.search.worker", str(job), str(result)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
        if result.is_file():
            record, state, values_out = json.loads(result.read_text())
            return record, state, values_out
    code = proc.returncode
    how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
    tail = " ".join((proc.stderr or "").strip().splitlines()[-2:])[-300:]
    reason = f"the trial's process died ({how}){': ' + tail if tail else ''}"
    return failed_outcome({"plan": apply_recipe(for_target(setup.raw, label), setup.dims[label], values),
                           "target": label}, reason, 3)
