"""What an executor is: it runs the compiled targets of one run and returns their reports.

Kept apart from the package's ``__init__`` (which picks an executor and so imports them all) so an
executor can name the interface without importing its siblings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from edgecraft.errors import EdgecraftError

if TYPE_CHECKING:
    from edgecraft.assembly.artifacts import ArtifactCache
    from edgecraft.compile.checks import RunInputs
    from edgecraft.compile.compiler import CompiledPlan
    from edgecraft.progress import Progress
    from edgecraft.verify.gate import ReferenceReport
    from edgecraft.verify.report import TargetError, TargetReport

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


class TargetsFailed(EdgecraftError):
    """Some targets stopped with an error, the others finished: raised by an executor once every target had its
    turn, carrying both, so the run's report shows every target's outcome (issue 26: the failure of one target
    must not lose the report of a target that passed). Its exit code is the highest of the errors' codes."""

    def __init__(self, reports: list[TargetReport], errors: list[TargetError],
                 causes: list[EdgecraftError] | None = None) -> None:
        one = errors[0] if len(errors) == 1 else None  # one target: its own message and hint, unchanged
        super().__init__(one.message if one else "; ".join(f"target {e.target!r}: {e.message}" for e in errors),
                         hint=one.hint if one else None)
        self.reports = reports
        self.errors = errors
        #: The exceptions themselves, in the order of ``errors`` (re-raised when no target was measured).
        self.causes = list(causes or [])
        self.exit_code = max(e.exit_code for e in errors)


def target_error(label: str, target_name: str, backend: str, exc: EdgecraftError) -> TargetError:
    """The report's entry for a target that stopped with ``exc``."""
    from edgecraft.verify.report import TargetError

    return TargetError(target=label, target_name=target_name, backend=backend, error=type(exc).__name__,
                       message=exc.message, hint=exc.hint, exit_code=exc.exit_code)
