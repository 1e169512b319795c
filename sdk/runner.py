"""run(plan): compile every target first, hand them to an executor, and assemble the run's report.

Every target is compiled before anything is built, so a plan with a step that one target cannot do
fails in seconds. What happens to each target then (build, load, evaluate, time, judge) is the
executor's: :func:`edgecraft.execute.target.run_target`, here or on a cluster. The runner only
judges the run as a whole (status, exit code) from the targets' reports.
"""

from __future__ import annotations

import time
from pathlib import Path

from edgecraft import __version__
from edgecraft.assembly.artifacts import ArtifactCache
from edgecraft.compile.checks import compile_all, prepare
from edgecraft.execute import Executor, executor_for
from edgecraft.execute.base import TargetsFailed
from edgecraft.execute.reference import compiled_bounds
from edgecraft.plan import CompressionPlan, RawPlan
from edgecraft.progress import NullProgress, Progress
from edgecraft.registry import Registry
from edgecraft.verify.gate import ReferenceReport, exit_code_for, overall_status
from edgecraft.verify.report import Report

__all__ = ["compile_all", "prepare", "run_plan"]


def run_plan(plan: CompressionPlan | RawPlan, registry: Registry, *, base_dir: Path | str = ".",
             targets: list[str] | None = None, cache_dir: Path | None = None,
             progress: Progress | None = None, plan_path: str = "<python>",
             reference: ReferenceReport | Path | str | None = None, no_cache: bool = False,
             executor: Executor | None = None) -> Report:
    """Compile, build, measure and judge ``plan`` on ``targets`` (default: all of the plan's targets).

    ``reference``: the report of the last released artifact; adds the plan's ``gate.reference`` bounds
    as verdicts (checked against every target before anything is built). ``executor``: where each
    target's build and measurement run (default: here, in order; see :mod:`edgecraft.execute`); every
    target is compiled here first either way.
    """
    progress = progress or NullProgress()
    run = prepare(plan, registry, Path(base_dir))
    plan = run.plan  # bound by prepare (a plan as written or built in Python), read from here on
    labels = targets or [t.label for t in plan.targets]
    compiled = compile_all(run, labels)
    ref = reference if reference is None or isinstance(reference, ReferenceReport) else ReferenceReport.load(reference)
    if ref is not None:
        compiled_bounds(plan)
        for label in labels:
            ref.for_target(label, compiled[label].target)
    cache = ArtifactCache(cache_dir, reuse=not no_cache)  # no_cache: rebuild every artifact, replacing entries
    # A raising integration hook is recorded, not raised: the run goes on and its report names the failure
    # (integration_errors; exit 5 if every contract passed: docs/release-gating.md, "When an integration fails").
    failures = registry.notify("edgecraft_run_started", plan=plan.model_dump(mode="json", by_alias=True),
                               targets=labels)
    executor = executor or executor_for(None)
    try:
        reports = executor.run_targets(
            run, compiled, labels, cache, progress, ref,
            lambda target_report: failures.extend(registry.notify("edgecraft_target_finished",
                                                                  target=target_report.model_dump(mode="json"))))
        errored = []
    except TargetsFailed as failed:
        if not failed.reports:  # nothing was measured: no verdict, no report; the error as it was raised
            if len(failed.causes) == 1:
                raise failed.causes[0]  # noqa: B904 - the original error, its own cause chain kept
            raise
        # Some targets were measured: the report shows every target's outcome; the exit code is the error's.
        reports, errored = failed.reports, failed.errors
    verdicts = [v for r in reports for v in r.contracts]
    exit_code = max([exit_code_for(verdicts, plan.gate.inconclusive), *(e.exit_code for e in errored)])
    report = Report(passed=all(r.passed for r in reports) and not errored, plan=plan_path, plan_name=plan.name,
                    edgecraft_version=__version__, created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    evaluation_dataset=plan.evaluation.dataset, targets=reports, errored=errored,
                    status="fail" if errored else overall_status(verdicts), exit_code=exit_code,
                    gate=plan.gate.model_dump(mode="json"),
                    reference_report=str(ref.path) if ref is not None else None,
                    executor=executor.describe())
    return report.with_integration_errors(failures) if failures else report
