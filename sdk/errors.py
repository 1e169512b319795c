"""Errors that map to the CLI's exit codes.

CI pipelines branch on the exit code, so every failure edgecraft anticipates is one of these
classes: bad input is the user's to fix (2), a plugin or runtime failure is the environment's (3).
A failed contract is not an exception at all: it is a verdict (exit code 1).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_CONTRACT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_PLUGIN_FAILURE = 3
#: A latency verdict stayed inconclusive and the plan's ``gate.inconclusive`` is ``error``.
EXIT_INCONCLUSIVE = 4
#: Every contract passed, but an integration's lifecycle hook (``edgecraft_run_started``,
#: ``edgecraft_target_finished``, ``edgecraft_report_ready``) raised: the reports are written with every verdict
#: and an ``integration_errors`` section naming the plugin, the hook and the exception. Not 0: a release whose
#: tracker or notification failed is not recorded where the team expects it. Not 3: nothing is wrong with the
#: model, the plan or the measurements. A plugin named in EDGECRAFT_BEST_EFFORT_PLUGINS does not change the code.
EXIT_INTEGRATION_FAILED = 5


class EdgecraftError(Exception):
    """Base class: carries the exit code the CLI should return."""

    exit_code: int = EXIT_PLUGIN_FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class InputError(EdgecraftError):
    """The plan, model, data or options are wrong (exit code 2)."""

    exit_code = EXIT_BAD_INPUT


class PlanValidationError(InputError):
    """The plan file does not match the schema; the message lists every bad field."""


class CompileError(InputError):
    """A step cannot be compiled for a target (exit code 2): raised before anything is built."""

    def __init__(self, message: str, *, step: str | None = None, target: str | None = None,
                 hint: str | None = None) -> None:
        where = " ".join(p for p in (f"step {step}" if step else "", f"on target {target!r}" if target else "") if p)
        super().__init__(f"{where}: {message}" if where else message, hint=hint)
        self.step = step
        self.target = target


class PluginError(EdgecraftError):
    """A plugin failed to load, registered something invalid, or raised while working (exit code 3)."""

    exit_code = EXIT_PLUGIN_FAILURE


class RuntimeFailure(EdgecraftError):
    """A runtime (ONNX Runtime, OpenVINO, TVM, a device) failed (exit code 3)."""

    exit_code = EXIT_PLUGIN_FAILURE


class EnvironmentFailure(RuntimeFailure):
    """The machine failed the run: a path that is not writable, not a directory, or a full disk (exit code 3).

    The message names the path and the operating system's own words, on one line: this is for the
    person fixing the CI runner, who needs no traceback (``--debug`` shows it).
    """
