"""Run the search: one Optuna study per target, trials through the normal run path, resumable storage.

Why Optuna and not a search of our own: its multi-objective GP, TPE and NSGA-II samplers, constraint
handling and RDB storage are mature; what edgecraft adds is what they cannot know: the typed space,
trials judged by the gate's own measurements on the target, and a front that respects the noise.

**A trial is a normal run of one recipe.** The recipe's plan (the plan's target entry with the
sampled params, switched-off steps removed) is validated and compiled like any plan and run by
:func:`edgecraft.runner.run_target`: baseline and candidate built (or taken from the artifact cache),
evaluated on the target, timed interleaved, every contract judged with its confidence interval.

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
from edgecraft.compile.checks import RunInputs, compile_all, prepare
from edgecraft.errors import EdgecraftError, InputError
from edgecraft.plan import AccuracyContract, CompressionPlan
from edgecraft.plan.loading import _read, load_plan, validate_plan
from edgecraft.plan.search import SearchSpec
from edgecraft.progress import NullProgress, Progress
from edgecraft.registry import Registry
from edgecraft.search.space import (
    Dimension,
    absolutize,
    apply_recipe,
    for_target,
    probe_target,
    resolve_space,
)
from edgecraft.verify.contracts import Verdict, judge_accuracy
from edgecraft.verify.report import TargetReport

RECORD = "edgecraft_record"
#: User attribute of a proposal told without running (a repeat, or no step at all): why.
SKIPPED = "edgecraft_skipped"
#: Skipped proposals allowed per target and invocation before the search stops that target: a space
#: whose every recipe has been tried offers nothing new.
MAX_SKIPS_FACTOR = 3


class TrialStopped(Exception):
    """Raised from the torch-stage hook: the trial already misses an accuracy contract."""

    def __init__(self, verdict: Verdict, metrics: dict[str, float], baseline_size: int | None) -> None:
        super().__init__(verdict.detail)
        self.verdict = verdict
        self.metrics = metrics
        self.baseline_size = baseline_size


@dataclass
class SearchSetup:
    """Everything fixed for a search: the plan, its space per target, the shared run state."""

    plan: CompressionPlan
    plan_path: Path
    base_dir: Path
    spec: SearchSpec
    registry: Registry
    raw: dict[str, Any]  # the plan file's own dict, relative paths made absolute, no `search`
    labels: list[str]
    dims: dict[str, list[Dimension]]
    notes: list[str]
    run: RunInputs  # loader and datasets shared by every trial; torch_memo shared across trials and targets
    user_space: bool
    #: Per target, the names its verdicts carry, in the plan's order (the constraints' order in every trial).
    contract_names: dict[str, list[str]] = field(default_factory=dict)


def setup_search(plan_path: Path, registry: Registry, *, targets: list[str] | None = None,
                 trials: int | None = None, time_budget_s: float | None = None, probe: bool = True) -> SearchSetup:
    """Load the plan, resolve and check the space for every target (exit 2 on any problem), before any trial.

    ``probe=False`` skips compiling every value (a trial's child process: the parent has checked them)."""
    plan, base_dir = load_plan(plan_path, registry)
    spec = plan.search or SearchSpec()
    if trials is not None:
        spec = spec.model_copy(update={"trials": trials})
    if time_budget_s is not None:
        spec = spec.model_copy(update={"time_budget_s": time_budget_s})
    if not plan.steps:
        raise InputError(f"{plan_path}: the plan has no steps: there is no recipe to search",
                         hint="add the steps to explore (e.g. pruning and quantization) with their usual params")
    labels = targets or [t.label for t in plan.targets]
    raw = _read(Path(plan_path))
    assert isinstance(raw, dict)
    raw = absolutize({k: v for k, v in raw.items() if k != "search"}, base_dir)
    dims = resolve_space(plan, registry, source=str(plan_path))
    run = prepare(validate_plan(for_target(raw, labels[0]) if labels else raw, registry, source=str(plan_path)),
                  registry, base_dir)
    per_target: dict[str, list[Dimension]] = {}
    notes: list[str] = []
    for label in labels:
        from edgecraft.compile.compiler import find_target

        find_target(plan, label)  # an unknown --target is exit 2 naming the plan's targets
        raw_t = for_target(raw, label)
        if not probe:
            per_target[label] = list(dims)
            continue

        def compile_fn(candidate: dict[str, Any], label: str = label) -> None:
            trial_plan = validate_plan(candidate, registry, source=f"{plan_path} ({label})")
            compile_all(_run_inputs(run, trial_plan), [label])

        compile_fn(raw_t)  # the plan itself must compile before its variants are probed
        per_target[label], target_notes = probe_target(raw_t, dims, label, compile_fn,
                                                       user_space=bool(plan.search and plan.search.space),
                                                       source=str(plan_path))
        notes += target_notes
    names = {label: [c.name or f"{c.kind}: {c.describe_bound()}" for c in plan.contracts_for(label)]
             for label in labels}
    return SearchSetup(plan, Path(plan_path), base_dir, spec, registry, raw, labels, per_target, notes, run,
                       bool(plan.search and plan.search.space), names)


def _run_inputs(shared: RunInputs, plan: CompressionPlan, hook: Any = None) -> RunInputs:
    if shared.baseline_memo is None:
        shared.baseline_memo = {}
    return RunInputs(plan, shared.registry, shared.base_dir, shared.loader, shared.datasets,
                     torch_memo=shared.torch_memo, torch_stage_done=hook, baseline_memo=shared.baseline_memo)


# ------------------------------------------------------------------------------------------ objectives
def accuracy_metric(plan: CompressionPlan, label: str, spec: SearchSpec) -> str | None:
    """The metric the accuracy objective reads: ``accuracy.METRIC``, else the accuracy contract's, else the
    plan's first evaluation metric."""
    objective = next((o for o in spec.objective if o.startswith("accuracy")), None)
    if objective and "." in objective:
        return objective.split(".", 1)[1]
    for contract in plan.contracts_for(label):
        if isinstance(contract, AccuracyContract):
            return contract.metric
    return plan.evaluation.metrics[0] if plan.evaluation.dataset is not None and plan.evaluation.metrics else None


def latency_interval(report: TargetReport, pct: str, plan: CompressionPlan) -> tuple[float, float, float]:
    """Candidate/baseline latency ratio at ``pct`` (estimate, low, high), from this trial's interleaved rounds.

    Taken from the trial's own speedup verdict when the plan has one at that percentile (its interval
    already leaves out disturbed rounds), else bootstrapped from the recorded rounds the same way.
    """
    for v in report.contracts:
        if (v.kind == "latency" and v.origin == "contract" and v.percentile == pct and v.unit.startswith("speedup")
                and v.ci_low and v.ci_high):
            return 1.0 / v.measured, 1.0 / v.ci_high, 1.0 / v.ci_low
    import numpy as np
    from edgecraft.verify.stats import ratio_interval

    base, comp = report.baseline.latency_ms, report.compressed.latency_ms
    rounds = comp.rounds or 1
    if (base.rounds or 1) == rounds and len(base.samples) % rounds == 0 and len(comp.samples) % rounds == 0 \
            and len(comp.samples) >= rounds:
        ci = ratio_interval(np.asarray(comp.samples).reshape(rounds, -1), np.asarray(base.samples).reshape(rounds, -1),
                            pct, confidence=plan.gate.confidence, resamples=plan.gate.bootstrap_resamples,
                            seed=plan.latency.seed, statistic="low")
        return ci.estimate, ci.low, ci.high
    ratio = getattr(comp, pct) / getattr(base, pct)
    return ratio, ratio, ratio


def violation(v: Verdict) -> float:
    """How far a verdict is from its bound, relative to the bound: > 0 misses it, <= 0 meets it."""
    higher_better = v.unit.startswith("speedup") or "ratio" in v.unit
    scale = max(abs(v.bound), 1e-3)
    raw = (v.bound - v.measured) / scale if higher_better else (v.measured - v.bound) / scale
    return min(raw, 0.0) if v.passed else max(raw, 1e-6)


def record_from_report(report: TargetReport, plan: CompressionPlan, spec: SearchSpec, label: str) -> dict[str, Any]:
    """The JSON-safe facts of a finished trial (stored with it in the study)."""
    metric = accuracy_metric(plan, label, spec)
    pct = next((o.split(".")[1] for o in spec.objective if o.startswith("latency.")), "p50")
    est, low, high = latency_interval(report, pct, plan)
    memory = report.compressed.memory
    compute = report.compressed.compute
    return {
        "state": "complete", "passed": report.passed, "status": report.status,
        "metric": metric, "accuracy": report.compressed.metrics.get(metric) if metric else None,
        "baseline_accuracy": report.baseline.metrics.get(metric) if metric else None,
        "metrics": report.compressed.metrics, "percentile": pct,
        "latency_ratio": est, "latency_ratio_ci": [low, high],
        "speedup": 1.0 / est if est > 0 else None,
        "latency_ms": getattr(report.compressed.latency_ms, pct),
        "baseline_latency_ms": getattr(report.baseline.latency_ms, pct),
        "size_bytes": report.compressed.size_bytes, "baseline_size_bytes": report.baseline.size_bytes,
        "size_ratio": report.ratios.get("size_ratio"),
        "memory_bytes": memory.peak_bytes if memory is not None and memory.measured else None,
        "memory_range": [memory.min_bytes, memory.max_bytes] if memory is not None and memory.measured else None,
        "macs": compute.macs if compute is not None else None,
        "verdicts": [{"name": v.name, "kind": v.kind, "status": v.status, "passed": v.passed, "measured": v.measured,
                      "bound": v.bound, "unit": v.unit, "detail": v.detail, "violation": violation(v)}
                     for v in report.contracts],
        "compiled_key": report.compiled_key, "artifact": report.artifact, "cached": report.compressed.cached,
        "baseline_cached": report.baseline.cached, "torch_stage_reused": _torch_stage_reused(report.artifact),
    }


def _torch_stage_reused(artifact: str | None) -> bool | None:
    """Whether the artifact's torch-stage steps came from an earlier trial's result (its manifest says so);
    None when the manifest is not readable here (an artifact built on a cluster node)."""
    import json

    from edgecraft.assembly.artifacts import MANIFEST

    path = Path(artifact) / MANIFEST if artifact else None
    if path is None or not path.is_file():
        return None
    steps = json.loads(path.read_text()).get("steps", [])
    return any(bool(d.get("reused_from_other_target")) for d in steps)


def objective_values(record: dict[str, Any], spec: SearchSpec) -> list[float]:
    out = []
    for name in spec.objective:
        if name.startswith("accuracy"):
            out.append(float(record["accuracy"]) if record.get("accuracy") is not None else 0.0)
        elif name.startswith("latency."):
            out.append(float(record["latency_ratio"]))
        elif name == "size":
            out.append(float(record["size_bytes"]))
        elif name == "memory":
            out.append(float(record["memory_bytes"]) if record.get("memory_bytes") is not None else 0.0)
        elif name == "macs":
            out.append(float(record["macs"]) if record.get("macs") is not None else 0.0)
    return out


def failed_outcome(base: dict[str, Any], reason: str, exit_code: int | None = None,
                   **extra: Any) -> tuple[dict[str, Any], str, list[float]]:
    """A failed trial's (record, state, objective values): one recipe that cannot be built or run is a
    failed trial, not a failed search; the report keeps its exit code."""
    record = {**base, "state": "failed", "reason": reason.replace("\n", " "), "verdicts": [], **extra}
    if exit_code is not None:
        record["exit_code"] = exit_code
    return record, "failed", []


def stopped_values(plan: CompressionPlan, spec: SearchSpec, label: str, stop: TrialStopped) -> list[float]:
    """Objective values for a trial stopped after its torch stage: what is known, and no gain for the rest.

    Why not simply mark it pruned: Optuna's GP sampler fits only completed trials, so it never learns that
    a region misses the accuracy contract and proposes it again and again (12 of 20 trials in one digits
    search went to the same stopped recipe). Told as complete, with the accuracy measured after the torch
    stage (the int8 stage after it can only lose more) and the baseline's latency and size (nothing
    gained is assumed), plus the accuracy constraint's measured violation, the trial is infeasible to
    every constrained sampler, and its region is learned. Empty when a value cannot be stated (the
    sampler is then told the trial was pruned).
    """
    metric = accuracy_metric(plan, label, spec)
    out: list[float] = []
    for name in spec.objective:
        if name.startswith("accuracy") and metric in stop.metrics:
            out.append(float(stop.metrics[metric]))
        elif name.startswith("latency."):
            out.append(1.0)
        elif name == "size" and stop.baseline_size is not None:
            out.append(float(stop.baseline_size))
        else:
            return []
    return out


def directions(spec: SearchSpec) -> list[str]:
    return ["maximize" if o.startswith("accuracy") else "minimize" for o in spec.objective]


# ------------------------------------------------------------------------------------------ the search
@dataclass
class SearchOutcome:
    setup: SearchSetup
    records: dict[str, list[dict[str, Any]]]  # label -> every finished trial's record
    ran: dict[str, int]  # trials run by this invocation, per target
    stopped_by_budget: bool
    wall_s: float
    notes: list[str] = field(default_factory=list)


def _constraints(trial: Any) -> list[float]:
    return list(trial.user_attrs.get("constraints") or [0.0])


def _per_trial_constraints() -> bool:
    """Optuna 5 takes constraints per trial (``Trial.set_constraint``); 4 through the sampler's constraints_func."""
    import optuna

    return hasattr(optuna.trial.Trial, "set_constraint")


def make_sampler(spec: SearchSpec, seed: int, name: str | None = None) -> Any:
    import optuna

    kind = name or spec.effective_sampler()
    constraints = {} if _per_trial_constraints() else {"constraints_func": _constraints}
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "gp":
        # Constraints come per trial (Trial.set_constraint); the objectives are measured, not exact.
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=spec.effective_startup(),
                                         deterministic_objective=False)
    if kind == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, spec.trials // 3)),
                                             **constraints)
    # constant_liar: a trial still running (several in flight on a Ray cluster) counts as a poor result, so
    # the next ask does not propose the same region again; with one trial at a time nothing is running.
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=spec.effective_startup(), multivariate=True,
                                      group=True, constant_liar=True, **constraints)


def _suggest(trial: Any, dims: list[Dimension], conditional: bool = True) -> dict[str, Any]:
    """The recipe: define-by-run, a switched-off step's params are not sampled (TPE models the conditional
    space). ``conditional=False`` samples every param anyway (a GP needs one fixed space) and leaves the
    switched-off steps' params out of the recipe it returns."""
    from edgecraft.plan.search import ChoiceDim

    values: dict[str, Any] = {}
    off = set()
    for dim in sorted(dims, key=lambda d: d.param is not None):
        if dim.param is not None and dim.step_index in off and conditional:
            continue
        if isinstance(dim.dim, ChoiceDim):
            value = trial.suggest_categorical(dim.path, dim.dim.choices)
        elif dim.is_int:
            value = trial.suggest_int(dim.path, int(dim.dim.low), int(dim.dim.high), log=dim.dim.log,
                                      step=int(dim.dim.step or 1))
        else:
            value = trial.suggest_float(dim.path, dim.dim.low, dim.dim.high, log=dim.dim.log, step=dim.dim.step)
        values[dim.path] = value
        if dim.param is None and value is False:
            off.add(dim.step_index)
    return {k: v for k, v in values.items()
            if not any(d.path == k and d.param is not None and d.step_index in off for d in dims)}


def _plan_values(raw: dict[str, Any], dims: list[Dimension], registry: Registry | None = None) -> dict[str, Any]:
    """The hand-written plan's own recipe, where it fits the space (enqueued as the first trial).

    A param the plan leaves out takes the strategy's default (what the plan runs with), not a sampled
    value: trial 0 must be exactly the recipe a person wrote, or the comparison against it is not."""
    from edgecraft.plan.search import ChoiceDim

    values: dict[str, Any] = {}
    steps = raw.get("steps", [])
    for dim in dims:
        if dim.param is None:
            if True in (dim.choices or []):
                values[dim.path] = True
            continue
        step = steps[dim.step_index]
        node: Any = step.get("params", {})
        for name in dim.param:
            node = node.get(name) if isinstance(node, dict) else None
        if node is None and registry is not None:
            node = registry.strategy(step["strategy"]).parse_params(step.get("params") or {})
            for name in dim.param:
                node = getattr(node, name, None)
        if node is None:
            continue
        if isinstance(dim.dim, ChoiceDim):
            if node in dim.dim.choices:
                values[dim.path] = node
        elif isinstance(node, int | float) and dim.dim.low <= node <= dim.dim.high:
            values[dim.path] = node
    return values


def storage_url(out_dir: Path) -> str:
    return f"sqlite:///{(out_dir / 'search.db').resolve()}"


def load_study(setup: SearchSetup, label: str, out_dir: Path, sampler: Any, study_suffix: str = "") -> Any:
    import optuna

    return optuna.create_study(study_name=f"{setup.plan.name}/{label}{study_suffix}", storage=storage_url(out_dir),
                               directions=directions(setup.spec), sampler=sampler, load_if_exists=True)


def finished(study: Any) -> list[Any]:
    """The trials that count toward ``trials``: run to an end (complete, stopped early, or failed with a
    record), not the proposals skipped as no recipe or a repeat (:func:`skip_reason`)."""
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False) if SKIPPED not in t.user_attrs and (
        t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (t.state == TrialState.FAIL and RECORD in t.user_attrs))]


def _recipe_key(values: dict[str, Any]) -> str:
    import json

    return json.dumps(values, sort_keys=True, default=str)


def skip_reason(setup: SearchSetup, label: str, study: Any, values: dict[str, Any],
                in_flight: list[dict[str, Any]] | None = None) -> tuple[str, Any] | None:
    """Why a proposed recipe is not worth a trial, with the finished trial it repeats (or None).

    Why: samplers propose again what they have seen (a few categorical choices, or TPE exploiting the
    best so far), and a space where every step may be switched off contains the baseline itself. Running
    those costs a slot of the budget for nothing the study does not already know: a repeat is told the
    earlier trial's result instead (the sampler learns as much), the baseline is told as a poor trial,
    and neither counts toward ``trials``."""
    if not apply_recipe(for_target(setup.raw, label), setup.dims[label], values).get("steps"):
        return "it switches every step off: that is the baseline itself, not a candidate", None
    key = _recipe_key(values)
    for t in finished(study):
        if _recipe_key(t.user_attrs[RECORD].get("recipe", {})) == key:
            return f"the same recipe as trial {t.number}", t
    if any(_recipe_key(v) == key for v in in_flight or []):
        return "the same recipe as a trial still running", None
    return None


def tell_skipped(setup: SearchSetup, label: str, study: Any, trial: Any, reason: str, original: Any,
                 log: Callable[[str], None]) -> None:
    """Tell the study a skipped proposal: a repeat gets its original's result, anything else counts as poor."""
    from optuna.trial import TrialState

    trial.set_user_attr(SKIPPED, reason)
    if original is not None:
        constraints = list(original.user_attrs.get("constraints") or [0.0])
        state = original.state
    else:
        constraints = [1.0] * max(1, len(setup.contract_names[label]))
        state = TrialState.PRUNED
    trial.set_user_attr("constraints", constraints)
    if _per_trial_constraints():
        for i, value in enumerate(constraints):
            trial.set_constraint(f"contract{i}", value)
    if state == TrialState.COMPLETE:
        study.tell(trial, list(original.values))
    else:
        study.tell(trial, state=state if state in (TrialState.PRUNED, TrialState.FAIL) else TrialState.PRUNED)
    log(f"{label}: trial {trial.number} not run and not counted: {reason}")


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
                log(f"{label}: trial {t.number} was interrupted by a previous run ({_fmt_params(t.params)}); "
                    "it does not count, a new trial takes its place")
        existing = len(study.get_trials(deepcopy=False))
        if existing:
            # A resumed sampler gets a seed of its own: with the original seed its random start would propose
            # the first run's recipes again (cache hits, but wasted trials), and maybe the one that crashed it.
            study.sampler = make_sampler(spec, seed + i + 7919 * existing, sampler_name)
        if enqueue_plan and not study.get_trials(deepcopy=False):
            study.enqueue_trial(_plan_values(for_target(setup.raw, label), setup.dims[label], setup.registry),
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


def pending_labels(setup: SearchSetup, studies: dict[str, Any], in_flight: dict[str, int] | None = None) -> list[str]:
    """Targets that still need trials (finished plus in-flight trials below ``trials``)."""
    in_flight = in_flight or {}
    return [lbl for lbl in setup.labels if len(finished(studies[lbl])) + in_flight.get(lbl, 0) < setup.spec.trials]


def exhausted(setup: SearchSetup, skips: dict[str, int], label: str, log: Callable[[str], None]) -> bool:
    """True (once said) when a target's sampler kept proposing recipes already known: stop asking it."""
    limit = MAX_SKIPS_FACTOR * setup.spec.trials
    if skips[label] == limit:
        log(f"{label}: {limit} proposals were repeats or no recipe: the space offers nothing new, stopping "
            "this target")
        skips[label] += 1
    return skips[label] > limit


def start_trial(setup: SearchSetup, label: str, study: Any, log: Callable[[str], None],
                in_flight: int = 0, explore: bool = False) -> tuple[Any, dict[str, Any]]:
    """Ask the study for the next recipe (define-by-run over the target's space) and say which it is.

    ``explore``: this one recipe is drawn at random instead. Why: the sampler's last proposal repeated a
    trial it cannot learn from (a GP models complete trials only, so a trial stopped early after the
    torch stage is invisible to it), and it would propose the same again; a random recipe gives it a new
    point and costs no more than the repeat would have."""
    import optuna

    conditional = not isinstance(study.sampler, optuna.samplers.GPSampler)
    sampler = study.sampler
    if explore:
        seed = setup.spec.seed if setup.spec.seed is not None else setup.plan.seed
        study.sampler = optuna.samplers.RandomSampler(seed=seed + 104729 + len(study.get_trials(deepcopy=False)))
    try:
        trial = study.ask()
        values = _suggest(trial, setup.dims[label], conditional=conditional)
    finally:
        study.sampler = sampler
    done = len(finished(study)) + in_flight + 1
    how = " (random: the last proposal was a repeat)" if explore else ""
    log(f"{label}: trial {trial.number} ({done}/{setup.spec.trials}){how}: "
        + ", ".join(f"{k}={_fmt(v)}" for k, v in values.items()))
    return trial, values


def finish_trial(setup: SearchSetup, label: str, study: Any, trial: Any, values: dict[str, Any],
                 outcome: tuple[dict[str, Any], str, list[float]], seconds: float, log: Callable[[str], None]) -> None:
    """Store the trial's record and constraints with it and tell the study how it ended."""
    from optuna.trial import TrialState

    record, state, values_out = outcome
    record["seconds"] = round(seconds, 2)
    record["recipe"] = values
    record["from_plan"] = bool(trial.user_attrs.get("from_plan"))
    trial.set_user_attr(RECORD, record)
    # Constraints: each contract's relative distance from its bound (<= 0: met), so the sampler prefers
    # recipes that meet the contracts over ones that only look good on the objectives.
    by_name = {v["name"]: v["violation"] for v in record.get("verdicts", [])}
    constraints = [by_name.get(name, 0.0) for name in setup.contract_names[label]] or [0.0]
    trial.set_user_attr("constraints", constraints)
    if _per_trial_constraints():
        for i, value in enumerate(constraints):
            trial.set_constraint(f"contract{i}", value)
    if state == "complete" or (state == "pruned" and values_out):  # see stopped_values
        study.tell(trial, values_out)
    elif state == "pruned":
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, state=TrialState.FAIL)
    log(f"{label}: trial {trial.number} {_summary(record)} ({record['seconds']:.0f} s)")


def _run_trials_here(setup: SearchSetup, studies: dict[str, Any], *, deadline: float, ran: dict[str, int],
                     cache: ArtifactCache, cache_dir: Path | None, progress: Progress,
                     log: Callable[[str], None]) -> bool:
    """One trial at a time in this process (or its child, ``isolate``); True when the budget stopped it."""
    spec = setup.spec
    pruned_metrics: dict[tuple[str, str], dict[str, float]] = {}
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
                outcome = _run_trial_isolated(setup, label, values, cache_dir)
            else:
                outcome = _run_trial(setup, label, values, cache, progress, pruned_metrics)
            finish_trial(setup, label, study, trial, values, outcome, time.monotonic() - t0, log)
            ran[label] += 1


def _fmt_params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in params.items()) or "no params"


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _summary(record: dict[str, Any]) -> str:
    if record["state"] == "pruned":
        return f"pruned after the torch stage: {record['reason']}"
    if record["state"] == "failed":
        return f"failed: {record['reason']}"
    failed = [v["name"] for v in record["verdicts"] if not v["passed"]]
    acc = f"{record['metric']} {record['accuracy']:.4f}, " if record.get("accuracy") is not None else ""
    return (f"{'meets every contract' if record['passed'] else 'misses ' + ', '.join(failed)}: {acc}"
            f"speedup {record['speedup']:.2f}x, size {record['size_bytes']:,} B")


def _run_trial_isolated(setup: SearchSetup, label: str, values: dict[str, Any],
                        cache_dir: Path | None) -> tuple[dict[str, Any], str, list[float]]:
    """Run one trial in a child process (``search.isolate``): a native crash there is this trial's failure."""
    import json
    import signal
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="edgecraft-trial-") as tmp:
        job, result = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job.write_text(json.dumps({"plan": str(setup.plan_path.resolve()), "label": label, "values": values,
                                   "cache_dir": str(cache_dir) if cache_dir else None}))
        proc = subprocess.run([sys.executable, "-m", "edgecraft.search.worker", str(job), str(result)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
        if result.is_file():
            record, state, values_out = json.loads(result.read_text())
            return record, state, values_out
    code = proc.returncode
    how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
    tail = " ".join((proc.stderr or "").strip().splitlines()[-2:])[-300:]
    reason = f"the trial's process died ({how}){': ' + tail if tail else ''}"
    return failed_outcome({"plan": apply_recipe(for_target(setup.raw, label), setup.dims[label], values),
                           "target": label}, reason, 3)


def _run_trial(setup: SearchSetup, label: str, values: dict[str, Any], cache: ArtifactCache, progress: Progress,
               pruned_metrics: dict[tuple[str, str], dict[str, float]]) -> tuple[dict[str, Any], str, list[float]]:
    """Run one recipe on one target through the normal run path; (record, state, objective values)."""
    from edgecraft.runner import run_target

    raw = apply_recipe(for_target(setup.raw, label), setup.dims[label], values)
    base = {"plan": raw, "target": label}
    try:
        plan = validate_plan(raw, setup.registry, source=f"recipe on {label}")
    except EdgecraftError as exc:
        return failed_outcome(base, str(exc))
    slack = setup.spec.prune_slack
    contracts = [c for c in plan.contracts_for(label) if isinstance(c, AccuracyContract)]

    def torch_stage_done(pipe: Any, handle: Any, key: str) -> None:
        if not contracts:
            return
        memo_key = (label, key)
        if memo_key not in pruned_metrics:
            progress.status(f"{label}: accuracy after the torch stage (early stop check)")
            pruned_metrics[memo_key] = pipe.evaluate_handle(handle)
        metrics = pruned_metrics[memo_key]
        for contract in contracts:
            verdict = judge_accuracy(contract, setup.registry.metric(contract.metric), pipe.baseline_metrics(),
                                     metrics)
            if verdict.measured > contract.max_drop + slack:
                raise TrialStopped(verdict, metrics, pipe.baseline_size_bytes)

    run = _run_inputs(setup.run, plan, torch_stage_done)
    try:
        compiled = compile_all(run, [label])[label]
        report = run_target(run, compiled, cache, progress)
    except TrialStopped as stop:
        v = stop.verdict
        record = {**base, "state": "pruned", "reason": v.detail, "metrics": stop.metrics, "passed": False,
                  "verdicts": [{"name": v.name, "kind": v.kind, "status": "fail", "passed": False,
                                "measured": v.measured, "bound": v.bound, "unit": v.unit,
                                "detail": f"after the torch stage: {v.detail}", "violation": violation(v)}]}
        return record, "pruned", stopped_values(plan, setup.spec, label, stop)
    except EdgecraftError as exc:
        # a search whose every trial failed that way exits with the trials' exit code
        return failed_outcome(base, str(exc), exc.exit_code)
    record = {**base, **record_from_report(report, plan, setup.spec, label)}
    return record, "complete", objective_values(record, setup.spec)
