"""The ``edgecraft search`` command body (kept out of cli.py, which only declares the options)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgecraft.errors import InputError

INSTALL_HINT = "pip install 'edgecraft[search]'"


def check_optuna() -> None:
    if importlib.util.find_spec("optuna") is None:
        raise InputError("`edgecraft search` needs Optuna, which is not installed", hint=INSTALL_HINT)


def check_ray(address: str | None) -> None:
    """``--ray``: the ray extra must be there (exit 2 with the install line before anything is compiled)."""
    if address is None:
        return
    from edgecraft.execute import executor_for

    executor_for(address)  # InputError naming the extra when Ray is missing


def search_command(plan: Path, registry: Any, *, targets: list[str] | None, trials: int | None,
                   time_budget_s: float | None, ray: str | None, out_dir: Path, cache_dir: Path | None,
                   progress: Any, log: Callable[[str], None]) -> tuple[int, list[Path], dict[str, Any]]:
    """Check, search (or resume), write the report; returns (exit code, files, the search.json document)."""
    check_optuna()
    check_ray(ray)
    from edgecraft.logging_setup import quiet_runtimes
    from edgecraft.search.report import write_all
    from edgecraft.search.study import run_search, setup_search

    quiet_runtimes()
    setup = setup_search(plan, registry, targets=targets, trials=trials, time_budget_s=time_budget_s)
    for note in setup.notes:
        log(f"note: {note}")
    for label, dims in setup.dims.items():
        log(f"{label}: space " + "; ".join(d.describe() for d in dims))
    if ray is not None and setup.spec.isolate:
        log("note: search.isolate is ignored with --ray: every trial runs in the cluster's worker processes")
    outcome = run_search(setup, out_dir, cache_dir=cache_dir, progress=progress, log=log, ray=ray)
    return write_all(outcome, out_dir)
