"""Release gating: noise-aware latency verdicts, adaptive repetitions, and bounds vs a reference report.

A latency verdict is judged on a bootstrap confidence interval (:mod:`edgecraft.verify.stats`), not on a
point estimate: ``pass`` when the whole interval meets the bound, ``fail`` when the whole interval
misses it, ``inconclusive`` otherwise. While any latency verdict of a target is inconclusive, more
interleaved rounds are measured in growing batches and the verdicts re-judged after each (a
sequential check, at a stricter level per look), until all are decided or the next round would not
fit in the plan's ``gate.time_budget_s``; what is still inconclusive then is counted as the plan's
``gate.inconclusive`` says (fail, pass, or error: exit 4). Rounds in which the timed process was
disturbed (descheduled by a neighbour, or far slower than usual) are left out of every verdict and
counted in it (:func:`edgecraft.verify.stats.disturbed_rounds`).

The reference is the report of the last released artifact (``edgecraft run PLAN --reference
REPORT.json``). When its artifact is still in the cache it is loaded and measured interleaved with
the candidate (drift cancels); when it is gone, the recorded numbers are used and the verdict says so.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from edgecraft.errors import EXIT_INCONCLUSIVE, InputError
from edgecraft.plan import GateSpec, LatencyContract, ReferenceBounds
from edgecraft.progress import NullProgress, Progress
from edgecraft.safe_text import bounded_repr
from edgecraft.verify.contracts import Verdict
from edgecraft.verify.measure import InterleavedTimer
from edgecraft.verify.reference_checks import check_reference_entry
from edgecraft.verify.report import REPORT_SCHEMA_ID
from edgecraft.verify.stats import (
    Interval,
    RoundFilter,
    contended,
    decide_at_least,
    decide_at_most,
    look_confidence,
    paired_ratio_interval,
    percentile_interval,
    ratio_interval,
    ratio_to_constant_interval,
)

#: Exit code when a verdict stayed inconclusive and the plan says ``gate.inconclusive: error``.

BASELINE, COMPRESSED, REFERENCE = "baseline", "compressed", "reference"


def _ci_text(interval: Interval, unit: str = "", digits: int = 3) -> str:
    return f"{100 * interval.confidence:.4g}% CI [{interval.low:.{digits}f}, {interval.high:.{digits}f}]{unit}"


def _name(contract: LatencyContract) -> str:
    return contract.name or f"latency: {contract.describe_bound()}"


# ------------------------------------------------------------------------------------------ contracts
@dataclass(frozen=True)
class _Basis:
    """What a latency verdict is judged on: the undisturbed rounds, and this look's confidence level.

    ``cpu_time``: the verdict compares CPU time per call, which being descheduled does not inflate, so no
    round is left out for what happened to the wall clock (``rounds`` then says what the wall-clock filter
    would have discarded, for the detail text only).
    """

    rounds: RoundFilter
    confidence: float
    look: int
    cpu_time: bool = False

    @property
    def keep(self) -> np.ndarray:
        """The rounds judged on: every round on CPU time; else the undisturbed ones, or all when most were
        disturbed (then nothing is decided anyway, see :meth:`status`, but the estimate is still reported)."""
        if self.cpu_time or self.rounds.too_disturbed:
            return np.ones_like(self.rounds.keep)
        return self.rounds.keep

    def fields(self) -> dict[str, Any]:
        if self.cpu_time:
            return {"rounds_used": int(self.rounds.keep.size), "rounds_discarded": 0, "discard_reasons": {},
                    "look": self.look, "confidence": self.confidence}
        return {"rounds_used": self.rounds.kept, "rounds_discarded": self.rounds.discarded,
                "discard_reasons": dict(self.rounds.reasons), "look": self.look, "confidence": self.confidence}

    def status(self, decided: str) -> str:
        # Most rounds disturbed: nothing is known about the model's usual latency, so nothing is decided
        # (more rounds are measured; a quieter stretch may still decide it).
        return "inconclusive" if self.rounds.too_disturbed and not self.cpu_time else decided

    def suffix(self) -> str:
        if self.cpu_time:
            disturbed = (f" ({self.rounds.discarded} disturbed on the wall clock, kept: being descheduled adds "
                         "no CPU time)" if self.rounds.discarded else "")
            return f"; look {self.look}, all {self.rounds.keep.size} rounds{disturbed}"
        text = f"; look {self.look}, {self.rounds.describe()}"
        if self.rounds.too_disturbed:
            text += ": too disturbed to judge (a busy runner? see docs/release-gating.md on latency.threads)"
        return text


def _basis(timer: InterleavedTimer, labels: list[str], gate: GateSpec, *, cpu_time: bool = False) -> _Basis:
    return _Basis(timer.round_filter(labels), look_confidence(gate.confidence, timer.look), timer.look, cpu_time)


def _statistic(timer: InterleavedTimer, num: str, den: str, pct: str) -> str:
    """The per-round statistic a ``num / den`` ratio is judged on: ``cpu``, ``low`` or ``median``.

    ``latency.statistic: auto`` compares wall-clock lower quintiles, unless the wall clock was visibly
    contended over the rounds so far (:func:`edgecraft.verify.stats.contended`): then every call of a slow
    model is stretched by time slices lost to other processes, no call is clean, and the per-round CPU time
    per call (which being descheduled does not inflate) is the measure that still tells the models apart.
    CPU time is judged per round only for p50 with at least 4 rounds; otherwise the wall clock.
    """
    statistic = timer.spec.statistic
    if statistic == "auto":
        shares = {label: timer.cpu_share(label) for label in (num, den)}
        others = {label: busy for label in (num, den) if (busy := timer.others_busy(label)) is not None}
        local = all(timer.host_timed(label) for label in (num, den))
        statistic = "cpu" if pct == "p50" and local and contended(shares, others) else "low"
    if statistic == "cpu" and not (pct == "p50" and timer.n_rounds >= 4):
        statistic = "low"
    return statistic


def _ratio(timer: InterleavedTimer, num: str, den: str, pct: str, statistic: str, keep: np.ndarray, gate: GateSpec,
           seed: int) -> tuple[Interval, str, str]:
    """The ``num / den`` latency ratio interval on ``statistic`` (see :func:`_statistic`), a note on the per-round
    statistic it used, and what it measured."""
    if statistic == "cpu":
        ci = paired_ratio_interval(timer.cpu_ms_per_call(num, keep), timer.cpu_ms_per_call(den, keep),
                                   confidence=gate.confidence, resamples=gate.bootstrap_resamples, seed=seed)
        why = ("the wall clock was contended (other processes kept the cores busy, or most blocks got well "
               "under their best CPU share)"
               if timer.spec.statistic == "auto" else "latency.statistic: cpu")
        return ci, f"; per-round CPU time per call ({why})", f"CPU time per call, paired per interleaved round ({why})"
    ci = ratio_interval(timer.rounds_ms(num, keep), timer.rounds_ms(den, keep), pct, confidence=gate.confidence,
                        resamples=gate.bootstrap_resamples, seed=seed, statistic=statistic)
    per_round = pct == "p50" and int(keep.sum()) >= 4
    what = (f"wall-clock time, {'lower quintile' if statistic == 'low' else 'median'} of each interleaved round's "
            "calls, paired per round" if per_round else f"wall-clock {pct} of all timed calls")
    return ci, "", what


def _ratio_basis(timer: InterleavedTimer, num: str, den: str, pct: str, gate: GateSpec,
                 seed: int) -> tuple[_Basis, Interval, str, str]:
    """The basis (rounds, look) and the ratio interval of ``num / den``: on CPU time every round counts, on the
    wall clock only the undisturbed ones (:func:`edgecraft.verify.stats.disturbed_rounds`).

    Why CPU-time verdicts keep the descheduled rounds: being descheduled is what makes the gate judge on CPU
    time, and it adds none. Discarding them lost a third to a half of the rounds under contention, and with
    them decisions (measured with benchmarks/gate_replay.py, 300 recorded rounds at load average 12-13, one core
    busy, 2 threads, ResNet-18-sized: judged on the block's mean CPU time the unchanged model passed 39 of 60
    replayed gates with the discards, 49 of 60 without; on the calls' lower quintile, 60 of 60).
    """
    statistic = _statistic(timer, num, den, pct)
    basis = _basis(timer, [num, den], gate, cpu_time=statistic == "cpu")
    ci, how, what = _ratio(timer, num, den, pct, statistic, basis.keep, gate, seed)
    return basis, ci, how, what


def judge_latency_interval(contract: LatencyContract, timer: InterleavedTimer, gate: GateSpec, *, emulated: bool,
                           seed: int = 0) -> Verdict:
    """A latency contract judged on the bootstrap interval of the undisturbed interleaved rounds so far.

    The interval is at this look's level (:func:`edgecraft.verify.stats.look_confidence`), so the gate can
    re-judge after every batch of rounds without inflating its false-decision rate.
    """
    pct = contract.percentile
    tag = " [emulated device: says nothing about real hardware]" if emulated else ""
    if contract.max_ms is not None:
        basis = _basis(timer, [COMPRESSED], gate)
        ratio, how, measured_as = None, "", ""
    else:
        # speedup = baseline / compressed
        basis, ratio, how, measured_as = _ratio_basis(timer, BASELINE, COMPRESSED, pct, gate, seed)
    comp = timer.rounds_ms(COMPRESSED, basis.keep)
    common = {"name": _name(contract), "kind": "latency", "emulated": emulated, "samples": int(comp.size),
              "percentile": pct, **basis.fields()}
    if ratio is None:
        assert contract.max_ms is not None
        ci = percentile_interval(comp, pct, confidence=gate.confidence, resamples=gate.bootstrap_resamples,
                                 seed=seed).at_confidence(basis.confidence)
        status = basis.status(decide_at_most(ci, contract.max_ms))
        detail = f"{pct} {ci.estimate:.3f} ms ({_ci_text(ci, ' ms')}) vs {contract.max_ms:g} ms ceiling: "
        detail += {"pass": "within", "fail": f"over by {ci.estimate - contract.max_ms:.3f} ms "
                   f"({100 * (ci.estimate / contract.max_ms - 1):.1f}%)",
                   "inconclusive": "undecided"}[status]
        return Verdict(**common, passed=status == "pass", status=status, measured=ci.estimate,
                       bound=contract.max_ms, unit=f"ms ({pct})", detail=detail + basis.suffix() + tag,
                       ci_low=ci.low, ci_high=ci.high, measured_as=f"wall-clock {pct} of the compressed model's calls")
    assert contract.min_speedup is not None
    ci = ratio.at_confidence(basis.confidence)
    status = basis.status(decide_at_least(ci, contract.min_speedup))
    detail = (f"{pct} speedup {ci.estimate:.2f}x ({_ci_text(ci, 'x', 2)}) vs {contract.min_speedup:g}x required: ")
    detail += {"pass": "met", "fail": f"short by {contract.min_speedup - ci.estimate:.2f}x",
               "inconclusive": "undecided"}[status]
    return Verdict(**common, passed=status == "pass", status=status, measured=ci.estimate,
                   bound=contract.min_speedup, unit=f"speedup ({pct})", detail=detail + how + basis.suffix() + tag,
                   ci_low=ci.low, ci_high=ci.high, measured_as=measured_as)


# ------------------------------------------------------------------------------------------ reference report
@dataclass
class ReferenceReport:
    """A previous run's ``edgecraft.report/v1`` document: the last released artifact per target."""

    path: Path
    document: dict[str, Any]
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | str) -> ReferenceReport:
        path = Path(path)
        where = f"--reference {path}"
        if not path.is_file():
            raise InputError(f"{where}: no such file", hint="pass the JSON report of the last released run "
                             "(`edgecraft run ... --report-json FILE` wrote it)")
        try:
            document = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{where}: not a JSON report ({type(exc).__name__}: {exc})") from exc
        if not isinstance(document, dict):
            raise InputError(f"{where}: not an edgecraft report (a JSON object with a 'schema' field)")
        schema = document.get("schema")
        if schema != REPORT_SCHEMA_ID:
            raise InputError(f"{where}: the report's schema is {bounded_repr(schema)}, but this edgecraft compares "
                             f"against {REPORT_SCHEMA_ID!r} reports only",
                             hint="re-run the reference plan with this edgecraft version to get a comparable "
                                  "report")
        targets = document.get("targets")
        if not isinstance(targets, list) or not all(isinstance(t, dict) and "target" in t for t in targets):
            raise InputError(f"{where}: malformed {REPORT_SCHEMA_ID} report: 'targets' must be a list of objects "
                             "with a 'target' label")
        return cls(path, document, {t["target"]: t for t in targets})

    def for_target(self, label: str, target_name: str) -> dict[str, Any]:
        """The reference entry for one target; an InputError when it is missing or for another target."""
        entry = self.targets.get(label)
        if entry is None:
            raise InputError(f"--reference {self.path}: the reference report is for target(s) "
                             f"{sorted(self.targets)}, not {label!r}",
                             hint="compare against a report of the same target, or restrict the run with "
                                  "--target")
        if entry.get("target_name", label) != target_name:
            raise InputError(f"--reference {self.path}: target entry {label!r} of the reference report ran on "
                             f"target {entry.get('target_name')!r}, but this plan's {label!r} is {target_name!r}: "
                             "measurements of different targets are not comparable")
        for side in ("compressed", "baseline"):
            if not isinstance(entry.get(side), dict) or "latency_ms" not in entry[side]:
                raise InputError(f"--reference {self.path}: target {label!r} has no {side} measurement")
        check_reference_entry(self.path, label, entry)
        return entry


@dataclass
class ReferenceSide:
    """What the candidate is compared with on one target."""

    entry: dict[str, Any]
    remeasured: bool
    artifact: str
    reason: str
    metrics: dict[str, float]
    size_bytes: int
    #: True when the recorded baseline is the same artifact as this run's (drift can be normalized out).
    same_baseline: bool = False


def reference_latency_verdict(bounds: ReferenceBounds, gate: GateSpec, timer: InterleavedTimer, ref: ReferenceSide,
                              *, emulated: bool, seed: int = 0) -> Verdict:
    """Latency regression of the candidate vs the reference, in percent, on a bootstrap interval of the
    undisturbed rounds, at this look's level (see :func:`judge_latency_interval`)."""
    assert bounds.max_latency_regression_pct is not None
    pct = bounds.percentile
    stat_note = ""
    measured_as = f"wall-clock {pct} of the compressed model's calls vs the recorded {pct}"
    if ref.remeasured:
        basis, ratio, stat_note, measured_as = _ratio_basis(timer, COMPRESSED, REFERENCE, pct, gate, seed)
        comp = timer.rounds_ms(COMPRESSED, basis.keep)
        how = "re-measured interleaved with the candidate"
    elif ref.same_baseline:
        # The recorded compressed/baseline ratio vs this run's: the shared baseline absorbs machine drift.
        basis, ratio, stat_note, measured_as = _ratio_basis(timer, COMPRESSED, BASELINE, pct, gate, seed)
        comp = timer.rounds_ms(COMPRESSED, basis.keep)
        recorded = float(ref.entry["compressed"]["latency_ms"][pct]) / float(ref.entry["baseline"]["latency_ms"][pct])
        ratio = ratio.scaled(1.0 / recorded)
        how = (f"recorded numbers ({ref.reason}); normalized by the shared baseline, measured again now: "
               f"recorded {pct} ratio compressed/baseline {recorded:.3f}")
    else:
        basis = _basis(timer, [COMPRESSED], gate)
        comp = timer.rounds_ms(COMPRESSED, basis.keep)
        recorded_ms = float(ref.entry["compressed"]["latency_ms"][pct])
        ratio = ratio_to_constant_interval(comp, recorded_ms, pct, confidence=gate.confidence,
                                           resamples=gate.bootstrap_resamples, seed=seed)
        how = (f"recorded numbers ({ref.reason}): {pct} {recorded_ms:.3f} ms measured in another run, so machine "
               "drift between the runs is not cancelled")
    ci = ratio.at_confidence(basis.confidence).scaled(100.0, -100.0)
    bound = bounds.max_latency_regression_pct
    status = basis.status(decide_at_most(ci, bound))
    detail = (f"{pct} vs reference: {ci.estimate:+.1f}% ({_ci_text(ci, '%', 1)}), at most +{bound:g}% allowed: "
              + {"pass": "within", "fail": f"over by {ci.estimate - bound:.1f} points",
                 "inconclusive": "undecided"}[status] + f"; reference {how}" + stat_note + basis.suffix())
    if emulated:
        detail += " [emulated device: says nothing about real hardware]"
    return Verdict(name=f"reference: {pct} latency regression <= {bound:g}%", kind="latency",
                   passed=status == "pass", status=status, measured=ci.estimate, bound=bound,
                   unit=f"% {pct} latency vs reference", detail=detail, emulated=emulated, origin="reference",
                   ci_low=ci.low, ci_high=ci.high, samples=int(comp.size), percentile=pct, **basis.fields(),
                   measured_as=measured_as,
                   note=None if ref.remeasured else f"compared with recorded numbers: {ref.reason}")


def reference_accuracy_verdict(bounds: ReferenceBounds, higher_is_better: bool, ref: ReferenceSide,
                               candidate: dict[str, float]) -> Verdict:
    assert bounds.max_accuracy_drop is not None
    metric = bounds.metric
    if metric not in candidate:
        raise InputError(f"gate.reference.metric {metric!r} is not measured; add it to evaluation.metrics "
                         f"(now {sorted(candidate)})")
    if metric not in ref.metrics:
        raise InputError(f"the reference report has no {metric!r} metric for this target (it has "
                         f"{sorted(ref.metrics)}); set gate.reference.metric to one of them")
    base, comp = ref.metrics[metric], candidate[metric]
    drop = (base - comp) if higher_is_better else (comp - base)
    passed = drop <= bounds.max_accuracy_drop + 1e-12
    how = "re-evaluated on this run's data" if ref.remeasured else f"recorded numbers ({ref.reason})"
    detail = (f"{metric}: reference {base:.4f}, candidate {comp:.4f}, drop {drop:.4f} "
              f"{'<=' if passed else '>'} {bounds.max_accuracy_drop:g} allowed; reference {how}")
    return Verdict(name=f"reference: {metric} drop <= {bounds.max_accuracy_drop:g}", kind="accuracy", passed=passed,
                   status="pass" if passed else "fail", measured=drop, bound=bounds.max_accuracy_drop,
                   unit=f"{metric} drop vs reference", detail=detail, origin="reference", metric=metric,
                   note=None if ref.remeasured else f"compared with recorded numbers: {ref.reason}")


def reference_size_verdict(bounds: ReferenceBounds, ref: ReferenceSide, candidate_bytes: int) -> Verdict:
    assert bounds.max_size_growth_pct is not None
    growth = 100.0 * (candidate_bytes / max(ref.size_bytes, 1) - 1.0)
    passed = growth <= bounds.max_size_growth_pct + 1e-9
    detail = (f"reference {ref.size_bytes} bytes ({'its manifest' if ref.remeasured else 'recorded numbers'}), "
              f"candidate {candidate_bytes} bytes: {growth:+.2f}% {'<=' if passed else '>'} "
              f"+{bounds.max_size_growth_pct:g}% allowed")
    return Verdict(name=f"reference: size growth <= {bounds.max_size_growth_pct:g}%", kind="size", passed=passed,
                   status="pass" if passed else "fail", measured=growth, bound=bounds.max_size_growth_pct,
                   unit="% size vs reference", detail=detail, origin="reference",
                   note=None if ref.remeasured else f"compared with recorded numbers: {ref.reason}")


# ------------------------------------------------------------------------------------------ settling
@dataclass
class Settled:
    verdicts: list[Verdict]
    extra_rounds: int
    extra_seconds: float
    looks: int = 1


#: Each batch of extra rounds adds this share of the rounds so far (at least 2): the looks come after
#: geometrically growing batches, so the per-look confidence (which tightens with every look) is paid
#: a logarithmic number of times, while a clear verdict still stops within half again its rounds.
BATCH_GROWTH = 0.5


def settle(judges: list[Callable[[], Verdict]], timer: InterleavedTimer, gate: GateSpec, *, label: str = "",
           progress: Progress | None = None) -> Settled:
    """Judge; while a latency verdict is inconclusive and budget remains, measure more rounds and re-judge;
    then count what is still inconclusive as ``gate.inconclusive`` says.

    A sequential check: every re-judgement is a new look, judged at a stricter level
    (:func:`edgecraft.verify.stats.look_confidence`), and measuring stops at the first look where every
    verdict is decided. The budget is enforced per round (:meth:`InterleavedTimer.take` does not start a
    round that would not end in time), so it is overrun by at most one round plus one judgement.
    """
    progress = progress or NullProgress()
    timer.look = 1
    verdicts = [judge() for judge in judges]
    started = time.monotonic()
    deadline = started + gate.time_budget_s
    extra = 0
    while any(v.status == "inconclusive" for v in verdicts):
        batch = max(2, math.ceil(BATCH_GROWTH * timer.n_rounds))
        undecided = ", ".join(v.name for v in verdicts if v.status == "inconclusive")
        progress.status(f"{label}: inconclusive ({undecided}); measuring up to {batch} more rounds "
                        f"(look {timer.look + 1})")
        taken = timer.take(batch, description=f"{label} more latency", deadline=deadline)
        if not taken:
            break
        extra += taken
        timer.look += 1
        verdicts = [judge() for judge in judges]
    spent = time.monotonic() - started
    return Settled([_apply_policy(v, gate, extra, spent) for v in verdicts], extra, spent, timer.look)


def _apply_policy(verdict: Verdict, gate: GateSpec, extra_rounds: int, spent: float) -> Verdict:
    if verdict.status != "inconclusive":
        return verdict
    meaning = {"fail": "counted as a failure", "pass": "counted as a pass",
               "error": f"the run exits {EXIT_INCONCLUSIVE} (undecided)"}[gate.inconclusive]
    note = (f"still inconclusive after {extra_rounds} extra round(s), {spent:.1f} s of the {gate.time_budget_s:g} s "
            f"budget: {meaning} (gate.inconclusive: {gate.inconclusive})")
    if verdict.note:
        note = f"{verdict.note}; {note}"
    return verdict.model_copy(update={"passed": gate.inconclusive == "pass", "note": note})


def overall_status(verdicts: list[Verdict]) -> str:
    """'fail' if any verdict failed, else 'inconclusive' if any is undecided, else 'pass'."""
    statuses = {v.status for v in verdicts}
    if "fail" in statuses:
        return "fail"
    return "inconclusive" if "inconclusive" in statuses else "pass"


def exit_code_for(verdicts: list[Verdict], inconclusive: str) -> int:
    """0 every verdict passed; 1 a verdict failed (or an inconclusive one counts as failed); 4 undecided."""
    from edgecraft.errors import EXIT_CONTRACT_FAILED, EXIT_OK

    if any(v.status == "fail" for v in verdicts):
        return EXIT_CONTRACT_FAILED
    if any(not v.passed for v in verdicts):
        return EXIT_INCONCLUSIVE if inconclusive == "error" and all(
            v.passed or v.status == "inconclusive" for v in verdicts) else EXIT_CONTRACT_FAILED
    return EXIT_OK
