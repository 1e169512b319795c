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
            help="An installed plugin: a strategy, backend (or a target's name), model source kind, dataset kind, "
                 "metric, contract kind, device, or an entry point with lifecycle hooks or commands; or an installed "
                 "distribution: every plugin it provides.")],
        params: Annotated[str | None, typer.Option(
            "--params", help="Params as JSON (default: the params' defaults): a strategy's, or a model source's, "
                             "dataset kind's or contract's fields besides 'kind'. The kit's plans have one dataset, "
                             "'kit'.")] = None,
        kind: Annotated[str | None, typer.Option(
            "--kind", help="Check NAME only as this kind (a name can be several, e.g. the tvm entry point's backend "
                           "and commands): strategy, backend, 'model source', 'dataset kind', metric, "
                           "'contract kind', device, integration, commands.")] = None,
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
    """Run the conformance kit on an installed plugin (each kind it is installed as): exit 0 if it conforms, 1
    with one line per violation (method and what was expected)."""
    from edgecraft.errors import InputError
    from edgecraft.testing import KINDS, check_distribution, check_name, check_plugin, kinds_of
    from edgecraft.testing.conformance import distribution_plugins

    session = CliSession.of(ctx)
    registry = session.registry()
    kwargs: dict[str, Any] = {"params": _json_option(params, "--params"), "targets": target,
                              "options": _json_option(options, "--options"), "tolerance": tolerance,
                              "registry": registry, "builtin_commands": session.builtin_commands or None}
    if kind is not None:
        if kind not in KINDS or kind == "plugin":
            raise InputError(f"--kind {kind!r}: not a kind of plugin; expected one of "
                             f"{', '.join(k for k in KINDS if k != 'plugin')}")
        reports = [check_plugin(name, kind=cast("Any", kind), **kwargs)]
    elif not kinds_of(registry, name) and name not in registry.broken and distribution_plugins(registry, name):
        reports = check_distribution(name, **kwargs)  # an installed distribution: every plugin of it
    else:
        reports = check_name(name, **kwargs)
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
