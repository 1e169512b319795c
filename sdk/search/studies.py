"""The Optuna side of a search: samplers, studies in sqlite, asking for a recipe over a target's space and
telling how its trial ended (with each contract's distance from its bound as a constraint), and
which proposals are not worth a trial (a repeat, or the baseline itself).

Only the thread that drives the search touches a study (sqlite storage); trials run elsewhere
(:mod:`edgecraft.search.trials`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgecraft.errors import InputError
from edgecraft.plan.search import ChoiceDim, SearchSpec
from edgecraft.registry import Registry
from edgecraft.search.records import Outcome
from edgecraft.search.setup import SearchSetup
from edgecraft.search.space import Dimension, apply_recipe, for_target

RECORD = "edgecraft_record"
#: User attribute of a proposal told without running (a repeat, or no step at all): why.
SKIPPED = "edgecraft_skipped"
#: Skipped proposals allowed per target and invocation before the search stops that target: a space
#: whose every recipe has been tried offers nothing new.
MAX_SKIPS_FACTOR = 3


def directions(spec: SearchSpec) -> list[str]:
    return ["maximize" if o.startswith("accuracy") else "minimize" for o in spec.objective]


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


def plan_values(raw: dict[str, Any], dims: list[Dimension], registry: Registry | None = None) -> dict[str, Any]:
    """The hand-written plan's own recipe, where it fits the space (enqueued as the first trial).

    A param the plan leaves out takes the strategy's default (what the plan runs with), not a sampled
    value: trial 0 must be exactly the recipe a person wrote, or the comparison against it is not."""
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


SQLITE_MAGIC = b"SQLite format 3\x00"


def storage_url(out_dir: Path) -> str:
    return f"sqlite:///{(out_dir / 'search.db').resolve()}"


def _unusable_db(path: Path, why: str) -> InputError:
    return InputError(f"{path}: the search's study file {why}",
                      hint=f"delete it to start the search afresh (`rm {path}`: its finished trials are lost), "
                           "or give the search another --out folder")


def check_study_file(out_dir: Path) -> None:
    """A ``search.db`` that is not an SQLite database (truncated, overwritten, random bytes) is bad input naming
    the file and what to do, not an SQLAlchemy traceback from deep inside Optuna."""
    path = out_dir / "search.db"
    if not path.exists():
        return
    if not path.is_file():
        raise _unusable_db(path, "is not a regular file")
    try:
        with path.open("rb") as fh:
            head = fh.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise _unusable_db(path, f"cannot be read ({exc.strerror or exc})") from exc
    if head and head != SQLITE_MAGIC:  # an empty file is what sqlite makes of a new database: fine
        raise _unusable_db(path, "is not an SQLite database (garbage or a foreign file)")


def load_study(setup: SearchSetup, label: str, out_dir: Path, sampler: Any, study_suffix: str = "") -> Any:
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    check_study_file(out_dir)
    try:
        return optuna.create_study(study_name=f"{setup.plan.name}/{label}{study_suffix}",
                                   storage=storage_url(out_dir), directions=directions(setup.spec), sampler=sampler,
                                   load_if_exists=True)
    except SQLAlchemyError as exc:  # a database with the right header but a broken body or foreign schema
        why = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise _unusable_db(out_dir / "search.db", f"is unusable ({why})") from exc


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
                 outcome: Outcome, seconds: float, log: Callable[[str], None]) -> None:
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


def fmt_params(params: dict[str, Any]) -> str:
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
