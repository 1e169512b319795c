"""The default executor: every target in the CLI's own process, one after the other."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgecraft.errors import EdgecraftError
from edgecraft.execute.base import OnTarget, TargetsFailed, target_error
from edgecraft.execute.target import run_target

if TYPE_CHECKING:
    from edgecraft.assembly.artifacts import ArtifactCache
    from edgecraft.compile.checks import RunInputs
    from edgecraft.compile.compiler import CompiledPlan
    from edgecraft.progress import Progress
    from edgecraft.verify.gate import ReferenceReport
    from edgecraft.verify.report import TargetError, TargetReport


class InProcessExecutor:
    """Build, measure and judge each target here, in order (torch-stage results shared between targets)."""

    def run_targets(self, run: RunInputs, compiled: dict[str, CompiledPlan], labels: list[str],
                    cache: ArtifactCache, progress: Progress, reference: ReferenceReport | None,
                    on_target: OnTarget) -> list[TargetReport]:
        reports: list[TargetReport] = []
        errors: list[TargetError] = []
        causes: list[EdgecraftError] = []
        for label in labels:
            try:
                report = run_target(run, compiled[label], cache, progress, reference)
            except EdgecraftError as exc:  # the next targets still run; the run's report shows this one errored
                target = compiled[label].target
                backend = run.registry.target(target)[0].name
                errors.append(target_error(label, target, backend, exc))
                causes.append(exc)
                progress.status(f"{label}: error: {exc.message}")
                continue
            on_target(report)
            reports.append(report)
        if errors:
            raise TargetsFailed(reports, errors, causes)
        return reports

    def describe(self) -> dict[str, Any] | None:
        return None
