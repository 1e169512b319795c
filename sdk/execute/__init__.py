"""Where a run's targets are built and measured: in the CLI's process, or on a cluster.

Compiling, judging the run and writing the report always happen in the CLI; an executor only decides
where each target's compile-checked work (build, then load, evaluate, time and judge its verdicts) runs.
So a report means the same wherever it was measured. That work is one function,
:func:`edgecraft.execute.target.run_target`, which every executor runs (and a search's trials too); no
executor imports the runner that hands it the targets. Two executors exist:

* :class:`~edgecraft.execute.local.InProcessExecutor` (the default): one target after the other in
  this process, exactly as ``run_plan`` always did.
* :class:`~edgecraft.execute.ray_executor.RayExecutor` (``edgecraft run --ray ADDRESS``, the ``ray``
  extra): each target becomes Ray tasks placed by the nodes' custom resources.
"""

from __future__ import annotations

from edgecraft.execute.base import Executor, OnTarget, ignore_target


def executor_for(ray_address: str | None) -> Executor:
    """The in-process executor, or a Ray executor for ``ray_address`` (``local``: an in-process cluster)."""
    if not ray_address:
        from edgecraft.execute.local import InProcessExecutor

        return InProcessExecutor()
    from edgecraft.execute.ray_executor import RayExecutor

    return RayExecutor(ray_address)


__all__ = ["Executor", "OnTarget", "executor_for", "ignore_target"]
