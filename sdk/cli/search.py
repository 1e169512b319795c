"""``edgecraft search``: search compression recipes per target and say which candidate meets every contract."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Any

import typer
from edgecraft.cli.app import app
from edgecraft.cli.options import CacheOpt, PlanArg, QuietOpt, TargetOpt
from edgecraft.cli.output import safe
from edgecraft.cli.session import CliSession


@app.command()
def search(ctx: typer.Context, plan: PlanArg, target: TargetOpt = None,
           trials: Annotated[int | None, typer.Option("--trials", min=1, help="Trials per target (default: the "
                                                      "plan's search.trials); a resumed search runs only the rest.")
                             ] = None,
           time_budget: Annotated[float | None, typer.Option("--time-budget", min=1, help="Seconds before no new "
                                                             "trial starts (default: search.time_budget_s).")] = None,
           ray: Annotated[str | None, typer.Option(
               "--ray", envvar="EDGECRAFT_RAY_ADDRESS", metavar="ADDRESS",
               help="Build and measure the trials on the Ray cluster at ADDRESS (HOST:PORT of its head; 'local' "
                    "starts one in this process), up to search.parallel at once (default: the cluster's timing "
                    "slots); asking, judging and reports stay here. Needs the ray extra.")] = None,
           out_dir: Annotated[Path, typer.Option("--out", help="Folder for search.json, trials.md/csv, search.html, "
                                                 "best.<target>.plan.yaml and the resumable study (search.db).")
                              ] = Path("search"),
           cache_dir: CacheOpt = None, quiet: QuietOpt = False) -> None:
    """Search compression recipes per target (Optuna); exit 0 if a candidate meets every contract, else 1."""
    from edgecraft.progress import NullProgress
    from edgecraft.rich_progress import RichProgress
    from edgecraft.search.command import search_command

    session = CliSession.of(ctx)
    session.verdict_pending = True
    registry = session.registry()
    progress = NullProgress() if quiet else RichProgress(session.err)

    def log(message: str) -> None:
        if not quiet:
            session.err.print(message, highlight=False, markup=False)

    with progress if isinstance(progress, RichProgress) else contextlib.nullcontext():
        code, written, document = search_command(plan, registry, targets=target or None, trials=trials,
                                                 time_budget_s=time_budget, ray=ray, out_dir=out_dir,
                                                 cache_dir=session.cache_dir(cache_dir), progress=progress, log=log)
    session.verdict_pending = False
    for entry in document["targets"]:
        session.out.print(_outcome(entry), highlight=False)
    for path in written:
        session.out.print(f"search: {path}", highlight=False)
    session.record({"verdict": code})  # the supervisor (edgecraft.supervise) accepts the exit code from here on
    raise typer.Exit(code)


def _outcome(entry: dict[str, Any]) -> str:
    """One target's line: its best trial, else the closest one and what it missed, else that none finished."""
    best, closest = entry["best"], entry["closest"]
    if best is not None:
        return (f"{safe(entry['target'])}: best trial {best['trial']}: speedup {best['speedup']:.2f}x, size ratio "
                f"{best['size_ratio']:.2f}x; {len(entry['front'])} on the front; plan {safe(best['plan_file'])}")
    if closest is not None:
        missed = "; ".join(f"{m['contract']} (short by {100 * m['relative_shortfall']:.1f}%)"
                           for m in closest["missed"]) or "pruned"
        return (f"{safe(entry['target'])}: no candidate meets every contract; closest: trial {closest['trial']}: "
                f"{safe(missed)}")
    return f"{safe(entry['target'])}: no trial finished"
