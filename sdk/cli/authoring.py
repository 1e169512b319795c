"""``edgecraft plugin check|new``: for plugin authors, the conformance kit and a package to start from."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from edgecraft.cli.app import plugin_app
from edgecraft.cli.output import safe
from edgecraft.cli.session import CliSession
from edgecraft.errors import EXIT_CONTRACT_FAILED, EXIT_OK

if TYPE_CHECKING:
    from edgecraft.scaffold import Kind


def _json_option(raw: str | None, option: str) -> dict[str, Any]:
    from edgecraft.errors import InputError

    if raw is None:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise InputError(f"{option}: not JSON ({exc})", hint=f"e.g. {option} '{{\"key\": 1}}'") from None
    if not isinstance(value, dict):
        raise InputError(f"{option}: expected a JSON object, got {type(value).__name__}")
    return value


@plugin_app.command("check")
def plugin_check(
        ctx: typer.Context,
        name: Annotated[str, typer.Argument(
            help="An installed strategy or backend (or a target's name), or an installed distribution: every "
                 "strategy and backend it provides.")],
        params: Annotated[str | None, typer.Option(
            "--params", help="Strategy params for the kit's plans, as JSON (default: the params' defaults). "
                             "The kit's plans have one dataset, 'kit'.")] = None,
        target: Annotated[list[str] | None, typer.Option(
            "--target", "-t", help="Only these targets (repeatable); emulated targets are checked only when "
                                   "named.")] = None,
        options: Annotated[str | None, typer.Option(
            "--options", help="Target options as JSON: {\"TARGET\": {\"option\": value}}.")] = None,
        tolerance: Annotated[float, typer.Option(
            "--tolerance", help="Backends: largest allowed difference from onnxruntime's outputs (relative to the "
                                "output's scale).")] = 1e-3,
        verbose: Annotated[bool, typer.Option("--all", "-a", help="Also list the checks that passed, refusals and "
                                                                   "skips.")] = False) -> None:
    """Run the conformance kit on an installed strategy or backend: exit 0 if it conforms, 1 with one line per
    violation (method and what was expected)."""
    from edgecraft.testing import check_distribution, check_plugin
    from edgecraft.testing.conformance import distribution_plugins

    session = CliSession.of(ctx)
    registry = session.registry()
    kwargs: dict[str, Any] = {"params": _json_option(params, "--params"), "targets": target,
                              "options": _json_option(options, "--options"), "tolerance": tolerance,
                              "registry": registry}
    known = name in registry.strategies or name in registry.backends or name in registry.targets
    if not known and distribution_plugins(registry, name):  # an installed distribution: every plugin of it
        reports = check_distribution(name, **kwargs)
    else:
        reports = [check_plugin(name, **kwargs)]
    for report in reports:
        for line in report.lines(verbose=verbose):
            sys.stdout.write(line + "\n")  # one line per finding, never wrapped: CI logs and grep read them
        sys.stdout.flush()
        color = "green" if report.ok else "red"
        session.out.print(f"[{color}]{safe(report.summary())}[/{color}]")
        if not verbose and report.ok:
            refused = sum(1 for f in report.findings if f.outcome in ("refused", "skipped"))
            if refused:
                session.out.print(f"({refused} refusal(s)/skip(s) not shown: --all lists them)", highlight=False)
    raise typer.Exit(EXIT_OK if all(r.ok for r in reports) else EXIT_CONTRACT_FAILED)


@plugin_app.command("new")
def plugin_new(
        ctx: typer.Context,
        kind: Annotated[str, typer.Argument(help="strategy or backend.")],
        name: Annotated[str, typer.Argument(help="The strategy's (or target's) name in plans, e.g. "
                                                 "weight-clustering.")],
        directory: Annotated[Path | None, typer.Argument(help="Where to write the package (default "
                                                              "./edgecraft-NAME); must be new or empty.")] = None
        ) -> None:
    """Write a complete, installable plugin package that passes `edgecraft plugin check` as generated."""
    from edgecraft.scaffold import create

    out = CliSession.of(ctx).out
    root, written = create(cast("Kind", kind), name, directory)  # create() refuses any other kind, naming both
    out.print(f"[green]created[/green] {safe(root)} ({len(written)} files): a {kind} plugin {name!r}")
    for line in (f"  pip install -e {root}", f"  edgecraft plugin check {name}", f"  (cd {root} && pytest)"):
        out.print(line, highlight=False, markup=False)
