"""Where a run's targets are built and measured: in the CLI's process, or on a cluster.

Compiling, judging the run and writing the report always happen in the CLI; an executor only decides
where each target's compile-checked work (build, then load, evaluate, time and judge its verdicts) runs.
So a report means the same wherever it was measured. Two executors exist:

* :class:`~edgecraft.execute.local.InProcessExecutor` (the default): one target after the other in
  this process, exactly as ``run_plan`` always did.
* :class:`~edgecraft.execute.ray_executor.RayExecutor` (``edgecraft run --ray ADDRESS``, the ``ray``
  extra): each target becomes Ray tasks placed by the nodes' custom resources.
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


def executor_for(ray_address: str | None) -> Executor:
    """The in-process executor, or a Ray executor for ``ray_address`` (``local``: an in-process cluster)."""
    if not ray_address:
        from edgecraft.execute.local import InProcessExecutor

        return InProcessExecutor()
    from edgecraft.execute.ray_executor import RayExecutor

    return RayExecutor(ray_address)


__all__ = ["Executor", "OnTarget", "executor_for"]
