"""Plugin results checked at the boundary, so a plugin's fault is blamed on the plugin.

Without these checks a strategy whose ``apply`` returns ``None``, a handle to a file it never wrote,
or details the report cannot serialize ended in an AttributeError or a serialization traceback
deep inside edgecraft, naming no plugin: the user filed the bug against the wrong project. Each
hook the core calls has one function here that calls it and checks what came back; a wrong return
or a raise is a :class:`~edgecraft.errors.PluginError` (exit code 3) naming the plugin's
distribution, the hook, and what was expected. ``--debug`` shows the plugin's own traceback (the
error's ``__cause__``).
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgecraft.errors import EdgecraftError, PluginError, disk_full_failure, is_disk_full
from edgecraft.models import ModelHandle, OnnxModel
from edgecraft.safe_text import bounded_repr, clean_text
from edgecraft.strategy import Resolution, ResolvedStep, StepResult, StrategyParams

_HANDLE_TYPES = tuple(typing.get_args(ModelHandle))


def _what(value: Any) -> str:
    return "None" if value is None else f"a {type(value).__name__} ({bounded_repr(value, 60)})"


def call_plugin(fn: Callable[..., Any], *args: Any, who: str, hook: str, **kwargs: Any) -> Any:
    """``fn(*args)``; anything but an EdgecraftError or KeyboardInterrupt leaving it is a PluginError.

    SystemExit is included: a plugin calling ``sys.exit`` must not decide the run's exit code.
    """
    try:
        return fn(*args, **kwargs)
    except (KeyboardInterrupt, EdgecraftError):
        raise
    except BaseException as exc:
        from edgecraft.user_code import describe_exit

        if is_disk_full(exc):  # the machine's fault, not the plugin's: name the disk (TMPDIR, or the file's)
            import tempfile

            raise disk_full_failure(exc, [Path(tempfile.gettempdir())], f"{who}: {hook}") from exc

        raise PluginError(f"{who}: {hook} {describe_exit(exc)}",
                          hint="a fault of that plugin; report it to its authors (--debug shows its traceback)"
                          ) from exc


def check_resolution(result: Any, *, who: str) -> Resolution:
    """What ``Strategy.resolve`` returned must be a Resolution with a stage, an implementation and params."""
    from edgecraft.models import Stage

    if not isinstance(result, Resolution):
        raise PluginError(f"{who}: resolve() returned {_what(result)}; expected an edgecraft.strategy.Resolution")
    problems = []
    if not isinstance(result.stage, Stage):
        problems.append(f"stage is {_what(result.stage)}, expected an edgecraft.models.Stage")
    if not isinstance(result.implementation, str):
        problems.append(f"implementation is {_what(result.implementation)}, expected a str")
    if not isinstance(result.params, StrategyParams):
        problems.append(f"params is {_what(result.params)}, expected the strategy's params model instance")
    if not isinstance(result.needs_data, list | tuple) or not all(isinstance(n, str) for n in result.needs_data):
        problems.append("needs_data must be a list of dataset names (str)")
    if not isinstance(result.notes, list | tuple):
        problems.append("notes must be a list of str")
    if problems:
        raise PluginError(f"{who}: resolve() returned a malformed Resolution: " + "; ".join(problems))
    return result


def check_step_result(result: Any, step: ResolvedStep, *, who: str) -> StepResult:
    """What ``Strategy.apply`` returned: a StepResult whose model is a handle of the step's stage
    (an ONNX handle's file must exist) and whose details the report can serialize."""
    if not isinstance(result, StepResult):
        raise PluginError(f"{who}: apply() returned {_what(result)}; expected an edgecraft.strategy.StepResult")
    model = result.model
    if not isinstance(model, _HANDLE_TYPES):
        raise PluginError(f"{who}: apply() returned a StepResult whose model is {_what(model)}; expected a "
                          f"model handle ({', '.join(t.__name__ for t in _HANDLE_TYPES)})")
    if model.stage != step.stage:
        raise PluginError(f"{who}: apply() returned a {model.stage}-stage model from a {step.stage}-stage step")
    if isinstance(model, OnnxModel) and not Path(model.path).is_file():
        raise PluginError(f"{who}: apply() returned an ONNX handle pointing at {clean_text(model.path)}, which "
                          "does not exist")
    check_json_details(result.details, who=who, hook="apply() details")
    return result


def check_json_details(details: Any, *, who: str, hook: str) -> None:
    """``details`` is a dict with str keys that the JSON report and the manifest can hold."""
    from pydantic_core import PydanticSerializationError, to_jsonable_python

    if not isinstance(details, dict) or not all(isinstance(k, str) for k in details):
        raise PluginError(f"{who}: {hook} is {_what(details)}; expected a dict with str keys")
    try:
        to_jsonable_python(details)
    except (PydanticSerializationError, ValueError, TypeError, RecursionError) as exc:
        raise PluginError(f"{who}: {hook} cannot be written to the JSON report: "
                          f"{clean_text(exc, keep_newlines=False)[:300]}",
                          hint="details must hold JSON values (str, numbers, bools, lists, dicts)") from None


def check_saved_files(files: Any, out_dir: Path, *, who: str) -> list[Path]:
    """``Backend.save`` returned a non-empty list of existing files inside ``out_dir``."""
    if not isinstance(files, list | tuple) or not files:
        raise PluginError(f"{who}: save() returned {_what(files)}; expected a non-empty list of the files written "
                          f"into {out_dir}")
    paths: list[Path] = []
    root = Path(out_dir).resolve()
    for item in files:
        if not isinstance(item, str | Path):
            raise PluginError(f"{who}: save() returned {_what(item)} in its file list; expected paths")
        path = Path(item)
        if not path.is_file():
            raise PluginError(f"{who}: save() listed {clean_text(path)}, which does not exist or is not a file")
        if not path.resolve().is_relative_to(root):
            raise PluginError(f"{who}: save() listed {clean_text(path)}, outside the artifact folder {out_dir}")
        paths.append(path)
    return paths


def check_session(session: Any, *, who: str) -> Any:
    """``Backend.load`` returned an edgecraft Session."""
    from edgecraft.backend import Session

    if not isinstance(session, Session):
        raise PluginError(f"{who}: load() returned {_what(session)}; expected an edgecraft.backend.Session")
    return session
