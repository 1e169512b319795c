"""The default executor: every target in the CLI's own process, one after the other."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgecraft.execute.base import OnTarget
from edgecraft.execute.target import run_target

if TYPE_CHECKING:
    from edgecraft.assembly.artifacts import ArtifactCache
    from edgecraft.compile.checks import RunInputs
    from edgecraft.compile.compiler import CompiledPlan
    from edgecraft.progress import Progress
    from edgecraft.verify.gate import ReferenceReport
    from edgecraft.verify.report import TargetReport


class InProcessExecutor:
    """Build, measure and judge each target here, in order (torch-stage results shared between targets)."""

    def run_targets(self, run: RunInputs, compiled: dict[str, CompiledPlan], labels: list[str],
                    cache: ArtifactCache, progress: Progress, reference: ReferenceReport | None,
                    on_target: OnTarget) -> list[TargetReport]:
        reports = []
        for label in labels:
            report = run_target(run, compiled[label], cache, progress, reference)
            on_target(report)
            reports.append(report)
        return reports

    def describe(self) -> dict[str, Any] | None:
        return None
