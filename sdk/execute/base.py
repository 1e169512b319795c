"""What an executor is: it runs the compiled targets of one run and returns their reports.

Kept apart from the package's ``__init__`` (which picks an executor and so imports them all) so an
executor can name the interface without importing its siblings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from edgecraft.assembly.artifacts import ArtifactCache
    from edgecraft.compile.checks import RunInputs
    from edgecraft.compile.compiler import CompiledPlan
    from edgecraft.progress import Progress
    from edgecraft.verify.gate import ReferenceReport
    from edgecraft.verify.report import TargetReport

#: Called with each target's report as soon as it is final (the ``edgecraft_target_finished`` hook).
OnTarget = Callable[["TargetReport"], None]


class Executor(Protocol):
    """Runs the compiled targets of one run and returns their reports, in the order of ``labels``."""

    def run_targets(self, run: RunInputs, compiled: dict[str, CompiledPlan], labels: list[str],
                    cache: ArtifactCache, progress: Progress, reference: ReferenceReport | None,
                    on_target: OnTarget) -> list[TargetReport]: ...

    def describe(self) -> dict[str, Any] | None:
        """What the report says about where the run went (None: in-process)."""
        ...


def ignore_target(_report: TargetReport) -> None:
    """An ``on_target`` for callers with nothing to do per target (a search trial)."""
