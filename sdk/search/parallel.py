"""``edgecraft search --ray ADDRESS``: trials built and measured on a Ray cluster, several in flight.

Why through the executor and not Optuna's own parallelism (``n_jobs``, one process per worker): a
trial's build and measurement must follow the same rules as ``edgecraft run --ray``: placement by
the nodes' resources, one timing per node at a time (the ``edgecraft_timing_slot`` resource), node
loss retried, a node with other versions refused. :class:`~edgecraft.execute.ray_executor.RayExecutor`
already enforces all of that for one run, so each trial is one ``run_targets`` call on it, and this
module only keeps several of them going.

**Ask and tell stay here, in one thread.** The studies (sqlite storage) are only touched by this
thread: it asks for a recipe, validates and compiles it (a recipe that does not compile fails here, in
seconds), hands the compiled plan to a worker thread that waits on the cluster, and tells the study
when the result comes back. TPE's ``constant_liar`` makes the trials still running count as poor
results, so parallel asks do not all propose the same recipe.

**How many in flight:** ``search.parallel``, by default the cluster's timing slots: each slot can time
one trial while no two timings share a node (Ray's scheduler queues the rest).

**What differs from the in-process search.** Trials are not stopped early after the torch stage: the
torch stage runs inside the node's build task, where the search's check cannot reach (a hopeless
recipe is judged on its full run instead). Torch-stage results are shared through each node's artifact
cache (a repeated recipe is a cache hit on the node that built it), not through this process's memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from edgecraft.assembly.artifacts import ArtifactCache
from edgecraft.execute.ray_executor import RayExecutor
from edgecraft.progress import NullProgress
from edgecraft.search.records import Outcome
from edgecraft.search.setup import SearchSetup
from edgecraft.search.studies import (
    exhausted,
    finish_trial,
    finished,
    pending_labels,
    skip_reason,
    start_trial,
    tell_skipped,
)
from edgecraft.search.trials import Trial, compile_trial, execute_trial


def run_remote(setup: SearchSetup, address: str, trial: Trial, cache: ArtifactCache) -> Outcome:
    """Build, measure and judge one recipe on the cluster (a worker thread; the connection is open)."""
    return execute_trial(setup, trial, RayExecutor(address), cache, NullProgress(), remote=True)


def run_trials_on_ray(setup: SearchSetup, studies: dict[str, Any], address: str, *, deadline: float,
                      ran: dict[str, int], cache: ArtifactCache, log: Callable[[str], None]) -> bool:
    """Keep up to ``parallel`` trials in flight on the cluster until every target has its trials or the
    budget is spent (no new trial starts then; the ones in flight finish). True when the budget stopped it."""
    session = RayExecutor(address)
    with session.connected():
        slots = session.timing_slots()
        width = setup.spec.parallel or max(1, slots)
        log(f"Ray cluster at {address}: {slots} timing slot(s); up to {width} trial(s) in flight")
        stopped = False
        skips = dict.fromkeys(setup.labels, 0)
        explore: set[str] = set()  # targets whose next recipe is drawn at random (see studies.start_trial)
        in_flight: dict[Future[Outcome], tuple[str, Any, dict[str, Any], float]] = {}
        with ThreadPoolExecutor(max_workers=width, thread_name_prefix="edgecraft-search") as pool:
            while True:
                while len(in_flight) < width:
                    counts = {lbl: sum(1 for v in in_flight.values() if v[0] == lbl) for lbl in setup.labels}
                    pending = [lbl for lbl in pending_labels(setup, studies, counts)
                               if not exhausted(setup, skips, lbl, log)]
                    if not pending:
                        break
                    if time.monotonic() >= deadline:
                        if not stopped:
                            log(f"time budget of {setup.spec.time_budget_s:g} s spent: no new trial starts; "
                                "waiting for the ones in flight")
                        stopped = True
                        break
                    label = min(pending, key=lambda lbl: (len(finished(studies[lbl])) + counts[lbl], lbl))
                    trial, values = start_trial(setup, label, studies[label], log, counts[label],
                                                explore=label in explore)
                    explore.discard(label)
                    running = [v[2] for v in in_flight.values() if v[0] == label]
                    skip = skip_reason(setup, label, studies[label], values, running)
                    if skip is not None:
                        tell_skipped(setup, label, studies[label], trial, *skip, log)
                        skips[label] += 1
                        explore.add(label)
                        continue
                    t0 = time.monotonic()
                    job = compile_trial(setup, label, values)
                    if not isinstance(job, Trial):
                        finish_trial(setup, label, studies[label], trial, values, job, time.monotonic() - t0, log)
                        ran[label] += 1
                        continue
                    future = pool.submit(run_remote, setup, address, job, cache)
                    in_flight[future] = (label, trial, values, t0)
                if not in_flight:
                    return stopped
                done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
                for future in done:
                    label, trial, values, t0 = in_flight.pop(future)
                    finish_trial(setup, label, studies[label], trial, values, future.result(),
                                 time.monotonic() - t0, log)
                    ran[label] += 1
