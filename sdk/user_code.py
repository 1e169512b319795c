"""Calling code a plan names (model and data factories) without letting it end the run.

A factory is the user's code running inside the gate. If it calls ``sys.exit(0)`` (or the plan
names ``builtins:exit``), Python's SystemExit would unwind through edgecraft and end the process
with exit code 0 and no verdict: CI reads that as "all contracts met". So every call of user
code goes through :func:`call_user_code`, which turns *any* way out of it (an exception, SystemExit,
GeneratorExit) into an :class:`~edgecraft.errors.InputError` naming the factory. Only
KeyboardInterrupt (and :class:`Terminated`, a SIGTERM) pass through: the user asked to stop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from edgecraft.errors import EdgecraftError, InputError
from edgecraft.safe_text import bounded_repr, clean_text

T = TypeVar("T")


class Terminated(KeyboardInterrupt):
    """Raised by the CLI's SIGTERM handler: a KeyboardInterrupt, so ``finally`` blocks and context
    managers remove partial artifacts exactly as on Ctrl-C, and no ``except Exception`` swallows it."""


def describe_exit(exc: BaseException) -> str:
    """``called sys.exit(0)`` or ``raised ValueError: message``, bounded and free of control characters."""
    if isinstance(exc, SystemExit):
        return f"called sys.exit({bounded_repr(exc.code, 40)})"
    text = clean_text(f"raised {type(exc).__name__}: {exc}", keep_newlines=False)
    return text if len(text) <= 500 else text[:500] + "…"


def call_user_code(fn: Callable[..., T], *args: Any, what: str,
                   error: type[EdgecraftError] = InputError, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``; any exception or exit from it becomes ``error`` naming ``what``.

    ``what`` is the plan field and reference, e.g. ``"model.factory: model.py:build"``. An
    EdgecraftError raised inside (user code calling edgecraft helpers) keeps its own message.
    """
    try:
        return fn(*args, **kwargs)
    except KeyboardInterrupt:
        raise
    except EdgecraftError:
        raise
    except BaseException as exc:  # SystemExit included: user code must not decide the exit code
        raise error(f"{what} {describe_exit(exc)}",
                    hint="this is the plan's own code; run it alone to debug (or use --debug for the traceback)"
                    ) from exc
