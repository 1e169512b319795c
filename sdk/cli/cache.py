"""``edgecraft cache info|clear``: where the artifact cache is, what it holds, and emptying it."""

from __future__ import annotations

import json
import sys

import typer
from edgecraft.cli.app import cache_app
from edgecraft.cli.options import CacheOpt, JsonOpt
from edgecraft.cli.output import human, safe
from edgecraft.cli.session import CliSession
from rich.table import Table


@cache_app.command("info")
def cache_info_command(ctx: typer.Context, cache_dir: CacheOpt = None, as_json: JsonOpt = False) -> None:
    """Show where the artifact cache is, how many entries it holds and their size."""
    from edgecraft.assembly.cache_admin import cache_info

    session = CliSession.of(ctx)
    info = cache_info(session.cache_dir(cache_dir))
    if as_json:
        sys.stdout.write(json.dumps(info.to_json(), indent=2) + "\n")
        return
    session.out.print(f"cache: {info.path}", highlight=False, markup=False)
    session.out.print(f"{len(info.entries)} entries, {human(info.bytes)}"
                      + (f", {len(info.partial)} unfinished build(s)" if info.partial else ""), highlight=False)
    if info.entries:
        table = Table()
        for column in ("key", "size", "created", "plan", "target", "steps"):
            table.add_column(column)
        for entry in info.entries:
            table.add_row(entry.key[:16], human(entry.bytes), entry.created or "?", safe(entry.plan or "?"),
                          safe(entry.target or "?"), safe(", ".join(entry.steps) or "(baseline)"))
        session.out.print(table)


@cache_app.command("clear")
def cache_clear_command(ctx: typer.Context, cache_dir: CacheOpt = None) -> None:
    """Delete every cached artifact (only what edgecraft wrote: entries and unfinished builds)."""
    from edgecraft.assembly.cache_admin import clear_cache

    session = CliSession.of(ctx)
    folder = session.cache_dir(cache_dir)
    removed, freed = clear_cache(folder)
    session.out.print(f"cleared {removed} entries ({human(freed)}) from {folder}", highlight=False, markup=False)
