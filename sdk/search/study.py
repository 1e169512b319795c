"""Run the search: one Optuna study per target, trials through the normal run path, resumable storage.

Why Optuna and not a search of our own: its multi-objective GP, TPE and NSGA-II samplers, constraint
handling and RDB storage are mature; what edgecraft adds is what they cannot know: the typed space,
trials judged by the gate's own measurements on the target, and a front that respects the noise.

**A trial is a normal run of one recipe.** The recipe's plan (the plan's target entry with the
sampled params, switched-off steps removed) is validated and compiled like any plan and handed to an
executor, the interface ``edgecraft run`` uses (:mod:`edgecraft.search.trials`): baseline and candidate
built (or taken from the artifact cache), evaluated on the target, timed interleaved, every contract
judged with its confidence interval.

**The default sampler** (``auto``) is Optuna's GPSampler for up to 100 trials per target. Why: in a
12-trial run of the digits benchmark, multivariate TPE's guided trials stayed at pruning ratios of
0.47 and below (and proposed the baseline and a repeat); the strong region, a higher ratio with
longer fine-tuning, was never tried. TPE only samples near what was good so far; a Gaussian process
models how latency, size and each contract move with a ratio or an epoch count and can head for a
region it has not seen. Its ask costs seconds and grows cubically with the trials, so beyond 100
trials TPE takes over.

**Cost.** One model loader, dataset store and artifact cache serve every trial; torch-stage results
are shared through ``torch_memo`` (a pruning result is built once for every int8 variant after it,
on every target); the baseline artifact is built once per target and then always a cache hit. Its
latency is timed again in every trial, interleaved with the candidate, on purpose: that pairing is
what makes trials measured minutes apart comparable.

**Early stopping.** When a trial's torch-stage steps are done (before export, int8 and timing), its
accuracy on the target is measured; if it already misses an accuracy contract by more than
``search.prune_slack``, the trial is pruned: post-training int8 does not win accuracy back.

The parts: :mod:`~edgecraft.search.setup` (the plan and its space, before any trial),
:mod:`~edgecraft.search.studies` (asking and telling Optuna), :mod:`~edgecraft.search.trials` (one
trial through an executor), :mod:`~edgecraft.search.records` (what is kept of a trial),
:mod:`~edgecraft.search.parallel` (several trials in flight on a Ray cluster); this module drives them.

**Resume.** Studies live in ``OUT/search.db`` (sqlite). A rerun loads them: finished trials (complete,
pruned, failed) count toward ``trials``, a trial the killed run left running is marked failed and
run again. Every trial's measurements are stored with it, so the report is rebuilt from storage.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecraft.assembly.artifacts import ArtifactCache
from edgecraft.progress import NullProgress, Progress
from edgecraft.search.setup import SearchSetup, setup_search
from edgecraft.search.space import for_target
from edgecraft.search.studies import (
    RECORD,
    exhausted,
    finish_trial,
    finished,
    fmt_params,
    load_study,
    make_sampler,
    pending_labels,
    plan_values,
    skip_reason,
    start_trial,
    tell_skipped,
)
from edgecraft.search.trials import EarlyMetrics, run_trial_here, run_trial_isolated

__all__ = ["SearchOutcome", "SearchSetup", "run_search", "setup_search"]


@dataclass
class SearchOutcome:
    setup: SearchSetup
    records: dict[str, list[dict[str, Any]]]  # label -> every finished trial's record
    ran: dict[str, int]  # trials run by this invocation, per target
    stopped_by_budget: bool
    wall_s: float
    notes: list[str] = field(default_factory=list)


def run_search(setup: SearchSetup, out_dir: Path, *, cache_dir: Path | None = None,
               progress: Progress | None = None, log: Callable[[str], None] = lambda _m: None,
               sampler_name: str | None = None, study_suffix: str = "", enqueue_plan: bool = True,
               ray: str | None = None) -> SearchOutcome:
    """Run (or resume) the studies until every target has ``trials`` finished trials or the budget is spent.

    ``ray``: a Ray cluster's address (``local``: one in this process): trials run there, several in flight
    (:mod:`edgecraft.search.parallel`); None: one after the other in this process."""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    progress = progress or NullProgress()
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = setup.spec
    seed = spec.seed if spec.seed is not None else setup.plan.seed
    cache = ArtifactCache(cache_dir, reuse=True)
    studies = {}
    for i, label in enumerate(setup.labels):
        study = load_study(setup, label, out_dir, make_sampler(spec, seed + i, sampler_name), study_suffix)
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
            if t.state == TrialState.RUNNING:  # left by a killed (or crashed) search: not finished, not counted
                study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
                log(f"{label}: trial {t.number} was interrupted by a previous run ({fmt_params(t.params)}); "
                    "it does not count, a new trial takes its place")
        existing = len(study.get_trials(deepcopy=False))
        if existing:
            # A resumed sampler gets a seed of its own: with the original seed its random start would propose
            # the first run's recipes again (cache hits, but wasted trials), and maybe the one that crashed it.
            study.sampler = make_sampler(spec, seed + i + 7919 * existing, sampler_name)
        if enqueue_plan and not study.get_trials(deepcopy=False):
            study.enqueue_trial(plan_values(for_target(setup.raw, label), setup.dims[label], setup.registry),
                                user_attrs={"from_plan": True})
        studies[label] = study
    # The budget is for trials: the clock starts once the studies are open (sqlite schema setup takes seconds).
    started = time.monotonic()
    deadline = started + spec.time_budget_s if spec.time_budget_s else math.inf
    ran = dict.fromkeys(setup.labels, 0)
    if ray is not None:
        from edgecraft.search.parallel import run_trials_on_ray

        stopped = run_trials_on_ray(setup, studies, ray, deadline=deadline, ran=ran, cache=cache, log=log)
    else:
        stopped = _run_trials_here(setup, studies, deadline=deadline, ran=ran, cache=cache, cache_dir=cache_dir,
                                   progress=progress, log=log)
    records = {lbl: [dict(t.user_attrs[RECORD], number=t.number) for t in finished(studies[lbl])]
               for lbl in setup.labels}
    return SearchOutcome(setup, records, ran, stopped, time.monotonic() - started, list(setup.notes))


def _run_trials_here(setup: SearchSetup, studies: dict[str, Any], *, deadline: float, ran: dict[str, int],
                     cache: ArtifactCache, cache_dir: Path | None, progress: Progress,
                     log: Callable[[str], None]) -> bool:
    """One trial at a time in this process (or its child, ``isolate``); True when the budget stopped it."""
    spec = setup.spec
    early: EarlyMetrics = {}
    skips = dict.fromkeys(setup.labels, 0)
    explore: set[str] = set()  # targets whose next recipe is drawn at random (see start_trial)
    while True:
        pending = [lbl for lbl in pending_labels(setup, studies) if not exhausted(setup, skips, lbl, log)]
        if not pending:
            return False
        if time.monotonic() >= deadline:
            log(f"time budget of {spec.time_budget_s:g} s spent: stopping with the front so far")
            return True
        for label in pending:
            if time.monotonic() >= deadline:
                break
            study = studies[label]
            trial, values = start_trial(setup, label, study, log, explore=label in explore)
            explore.discard(label)
            skip = skip_reason(setup, label, study, values)
            if skip is not None:
                tell_skipped(setup, label, study, trial, *skip, log)
                skips[label] += 1
                explore.add(label)
                continue
            t0 = time.monotonic()
            if spec.isolate:
                outcome = run_trial_isolated(setup, label, values, cache_dir)
            else:
                outcome = run_trial_here(setup, label, values, cache, progress, early)
            finish_trial(setup, label, study, trial, values, outcome, time.monotonic() - t0, log)
            ran[label] += 1
