"""``edgecraft plugins``: what every installed plugin provides, with its distribution, and what did not load."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer
from edgecraft.cli.app import app
from edgecraft.cli.options import JsonOpt
from edgecraft.cli.output import safe
from edgecraft.cli.session import CliSession
from edgecraft.settings import DISABLE_ENV
from rich.table import Table

if TYPE_CHECKING:
    from edgecraft.cli.plugin_commands import PluginCommands
    from edgecraft.registry import Registry

COLUMNS = ("kind", "name", "distribution", "version", "plugin", "summary")


@app.command()
def plugins(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List every strategy, backend, target and device with the distribution that provides it, and every
    plugin that did not load, with the reason (exit 3 for those only under --strict-plugins)."""
    session = CliSession.of(ctx)
    registry = session.registry(tolerate_broken=True)
    commands = session.plugin_commands()
    rows: list[dict[str, str]] = []
    for kind, table in (("strategy", registry.strategies), ("backend", registry.backends),
                        ("target", registry.targets), ("device", registry.devices), ("metric", registry.metrics),
                        ("model source", registry.model_sources), ("dataset kind", registry.dataset_kinds)):
        for name, provided in sorted(table.items()):
            rows.append({"kind": kind, "name": name, "distribution": provided.provenance.distribution,
                         "version": provided.provenance.version, "plugin": provided.provenance.plugin,
                         "summary": provided.summary})
    rows.extend(_integration_rows(registry))
    rows.extend(_command_rows(commands))
    broken = session.broken_plugins(registry)
    for plugin in broken:
        rows.append({"kind": "broken", "name": plugin.plugin, "distribution": plugin.distribution,
                     "version": plugin.version, "plugin": plugin.plugin, "summary": plugin.reason})
    for name in registry.disabled:
        rows.append({"kind": "disabled", "name": name, "distribution": "", "version": "", "plugin": name,
                     "summary": f"skipped: named in {DISABLE_ENV} / --disable-plugins"})
    if as_json:
        session.out.print_json(json.dumps(rows))
    else:
        listing = Table(title="edgecraft plugins")
        for column in COLUMNS:
            listing.add_column(column)
        for row in rows:
            style = "red" if row["kind"] == "broken" else None
            listing.add_row(*(safe(row[c]) for c in COLUMNS), style=style)
        session.out.print(listing)
    if broken and session.settings.strict_plugins:
        raise broken[0].error()


def _integration_rows(registry: Registry) -> list[dict[str, str]]:
    """Plugins implementing lifecycle hooks (run started, target finished, report ready), with their distribution."""
    from importlib import metadata

    from edgecraft.hookspecs import ENTRY_POINT_GROUP

    dists = {ep.name: ep.dist for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    hooks: dict[str, list[str]] = {}
    pm = registry.plugin_manager
    for hook in ("edgecraft_run_started", "edgecraft_target_finished", "edgecraft_report_ready"):
        for impl in getattr(pm.hook, hook).get_hookimpls():
            hooks.setdefault(pm.get_name(impl.plugin) or repr(impl.plugin), []).append(hook.removeprefix("edgecraft_"))
    rows = []
    for name, implemented in sorted(hooks.items()):
        dist = dists.get(name)
        summary = ((getattr(pm.get_plugin(name), "__doc__", None) or "").strip().splitlines() or [""])[0]
        rows.append({"kind": "integration", "name": name, "distribution": dist.name if dist else "local",
                     "version": dist.version if dist else "-", "plugin": name,
                     "summary": f"{summary} [hooks: {', '.join(implemented)}]"})
    return rows


def _command_rows(commands: PluginCommands) -> list[dict[str, str]]:
    """Commands plugins add to the CLI (``edgecraft_register_commands``), e.g. ``device`` from the TVM backend."""
    return [{"kind": "command", "name": name, "distribution": provided.provenance.distribution,
             "version": provided.provenance.version, "plugin": provided.provenance.plugin,
             "summary": provided.summary} for name, provided in sorted(commands.commands.items())]
