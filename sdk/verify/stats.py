"""Confidence intervals for latency verdicts: bootstraps over interleaved rounds.

Why this shape: on a shared machine the dominant noise is *drift* (another job starts, the clock
changes) that hits every model measured in the same round alike, plus per-call jitter inside a
round. Latency is therefore measured in rounds where every model runs a block of calls in shuffled
order (:class:`edgecraft.verify.measure.InterleavedTimer`), and the round is the unit the bootstrap resamples:

* a **ratio** of two models at p50 (speedup, regression vs a reference) is judged per round (the
  ratio of the two blocks' lower quintiles, or medians, inside one round, where drift cancels),
  summarized over rounds by a robust mean of log-ratios, with a bootstrap over rounds;
* a **single model's percentile** (a ``max_ms`` ceiling) and tail-percentile ratios use a paired
  two-stage (hierarchical) bootstrap: rounds, then calls within each chosen round. It is
  conservative, which for a release gate is the right side to err on: too wide an interval yields
  "inconclusive" and more measuring, never a false verdict.

Two more defences, for shared runners: rounds in which the timed process was visibly disturbed
(descheduled, or a block far slower than that model's usual) are discarded before judging
(:func:`disturbed_rounds`), and a verdict re-judged after more rounds is judged at a stricter
confidence per look (:func:`look_confidence`), so looking again and again does not turn noise into a
decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

PERCENTILES = {"p50": 50.0, "p95": 95.0, "p99": 99.0}


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval."""

    estimate: float
    low: float
    high: float
    confidence: float

    def scaled(self, factor: float, offset: float = 0.0) -> Interval:
        """``estimate * factor + offset`` for every field (e.g. a ratio as a percentage change)."""
        return Interval(self.estimate * factor + offset, self.low * factor + offset, self.high * factor + offset,
                        self.confidence)

    def at_confidence(self, confidence: float) -> Interval:
        """The interval stretched about its estimate to another two-sided level (normal-quantile ratio).

        Each side keeps its own width (the bootstrap's asymmetry) and is scaled by z(new)/z(old). Used for
        the stricter per-look levels of sequential checking, whose far tails a bootstrap of a few thousand
        resamples cannot estimate directly.
        """
        factor = _z(confidence) / _z(self.confidence)
        return Interval(self.estimate, self.estimate - (self.estimate - self.low) * factor,
                        self.estimate + (self.high - self.estimate) * factor, confidence)


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def look_confidence(confidence: float, look: int) -> float:
    """The two-sided level at which look number ``look`` (1, 2, ...) of a sequential check is judged.

    A gate that re-judges an inconclusive verdict after every batch of rounds gets many chances to
    cross a bound by luck: judged each time at 95%, ten looks at an undecidable verdict would make a
    false decision far more likely than 5%. So look k spends only ``alpha * 6 / (pi^2 k^2)`` of the error
    rate ``alpha = 1 - confidence`` (these shares sum to alpha over infinitely many looks: a Bonferroni
    union bound, the simplest alpha-spending rule that needs no maximum number of looks, which a time
    budget cannot know in advance). Look 1 is judged at 97.0% for a 95% gate, look 2 at 99.2%, look 10 at
    99.97%; since looks come after geometrically growing batches, a budget rarely allows more than ~10.
    """
    if look < 1:
        raise ValueError(f"looks are numbered from 1, got {look}")
    alpha = (1.0 - confidence) * 6.0 / (np.pi ** 2 * look ** 2)
    return 1.0 - alpha


def _as_rounds(rounds: np.ndarray | list[list[float]]) -> np.ndarray:
    arr = np.asarray(rounds, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"expected a (rounds, calls) array of latencies, got shape {arr.shape}")
    return arr


#: Most pooled samples one bootstrap chunk materializes (indices and values: 16 bytes each, so ~64 MB).
BOOT_CHUNK_ELEMENTS = 4_000_000


def _boot_percentile(arr: np.ndarray, round_idx: np.ndarray, rng: np.random.Generator, q: float) -> np.ndarray:
    """(B,) percentile ``q`` of each resample: rounds chosen by ``round_idx`` (B, R), then calls within each round.

    Computed in chunks of resamples. Why: the whole (B, R, n) gather costs 16 bytes per resample per timed call
    (an int64 index and a float64 value), 2000 x 6 rounds x 20,000 calls = 3.8 GB, plus np.percentile's copy;
    that was the CLI's "leak" of ~16 KB per timed call (native, numpy's buffers, freed after the verdict). A
    chunk holds at most :data:`BOOT_CHUNK_ELEMENTS` samples, so the peak no longer grows with the calls."""
    b, r = round_idx.shape
    n = arr.shape[1]
    rows = max(1, BOOT_CHUNK_ELEMENTS // max(r * n, 1))
    out = np.empty(b, dtype=np.float64)
    for start in range(0, b, rows):
        chunk = round_idx[start:start + rows]
        call_idx = rng.integers(0, n, size=(chunk.shape[0], r, n))
        pooled = arr[chunk[:, :, None], call_idx].reshape(chunk.shape[0], r * n)
        del call_idx
        out[start:start + chunk.shape[0]] = np.percentile(pooled, q, axis=1)
    return out


def _interval(point: float, boot: np.ndarray, confidence: float) -> Interval:
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(boot, [alpha, 1.0 - alpha])
    return Interval(float(point), float(low), float(high), confidence)


def percentile_interval(rounds: np.ndarray | list[list[float]], percentile: str, *, confidence: float = 0.95,
                        resamples: int = 2000, seed: int = 0) -> Interval:
    """Confidence interval of one model's latency percentile (for ``max_ms`` ceilings)."""
    arr = _as_rounds(rounds)
    q = PERCENTILES[percentile]
    rng = np.random.default_rng(seed)
    round_idx = rng.integers(0, arr.shape[0], size=(resamples, arr.shape[0]))
    boot = _boot_percentile(arr, round_idx, rng, q)
    return _interval(float(np.percentile(arr, q)), boot, confidence)


def _trimmed_mean(values: np.ndarray, axis: int, trim: float = 0.25) -> np.ndarray:
    """Mean of the middle ``1 - 2*trim`` of the values along ``axis`` (robust to a few disturbed rounds)."""
    ordered = np.sort(values, axis=axis)
    n = ordered.shape[axis]
    cut = int(np.floor(n * trim))
    keep = np.take(ordered, np.arange(cut, n - cut), axis=axis)
    return keep.mean(axis=axis)


#: The quantile of a block the ``low`` round statistic takes (its lower quintile).
LOW_QUANTILE = 0.2


def round_statistic(rounds: np.ndarray, statistic: str) -> np.ndarray:
    """One number per round: the block's lower quintile (``low``) or its median (``median``).

    Why the lower quintile: a busy neighbour, a page fault or a descheduled intra-op thread can only add
    time to a call, never remove it, so the low end of a block is what the model costs on this machine,
    and it moves far less than the median when the neighbour hits some of the calls. Not the minimum: one
    lucky call (a warm branch predictor) makes the minimum noisier than a low quantile of many calls.
    """
    if statistic == "low":
        return np.quantile(rounds, LOW_QUANTILE, axis=1)
    if statistic == "median":
        return np.median(rounds, axis=1)
    raise ValueError(f"unknown round statistic {statistic!r} (low | median)")


def ratio_interval(numerator: np.ndarray | list[list[float]], denominator: np.ndarray | list[list[float]],
                   percentile: str, *, confidence: float = 0.95, resamples: int = 2000, seed: int = 0,
                   statistic: str = "median") -> Interval:
    """Confidence interval of the latency ratio ``numerator / denominator`` of two models measured in the
    same interleaved rounds.

    For ``p50`` the statistic is per round: the ratio of the two models' block statistics (medians, or
    lower quintiles with ``statistic="low"``, see :func:`round_statistic`) *within* each round
    (where both saw the same machine state, so drift cancels), summarized as the interquartile mean of
    the log-ratios over rounds; the bootstrap resamples rounds. That is far tighter than comparing
    pooled medians, which still carry the drift between rounds. A tail percentile (``p95``/``p99``)
    cannot be estimated from one round's block of calls, so it is judged on the pooled samples with the
    paired two-stage bootstrap (wider, conservative).
    """
    num, den = _as_rounds(numerator), _as_rounds(denominator)
    if num.shape[0] != den.shape[0]:
        raise ValueError(f"paired rounds differ in number: {num.shape[0]} vs {den.shape[0]}")
    rng = np.random.default_rng(seed)
    rounds = num.shape[0]
    round_idx = rng.integers(0, rounds, size=(resamples, rounds))
    if percentile == "p50" and rounds >= 4:
        return paired_ratio_interval(round_statistic(num, statistic), round_statistic(den, statistic),
                                     confidence=confidence, resamples=resamples, seed=seed)
    q = PERCENTILES[percentile]
    boot = _boot_percentile(num, round_idx, rng, q) / _boot_percentile(den, round_idx, rng, q)
    return _interval(float(np.percentile(num, q) / np.percentile(den, q)), boot, confidence)


def paired_ratio_interval(numerator: np.ndarray, denominator: np.ndarray, *, confidence: float = 0.95,
                          resamples: int = 2000, seed: int = 0) -> Interval:
    """Interval of ``numerator / denominator`` from one value per round each (paired by round): the
    interquartile mean of the per-round log-ratios, bootstrapped over rounds."""
    num, den = np.asarray(numerator, dtype=np.float64), np.asarray(denominator, dtype=np.float64)
    if num.shape != den.shape or num.ndim != 1 or num.size < 1:
        raise ValueError(f"paired per-round values differ in shape: {num.shape} vs {den.shape}")
    rng = np.random.default_rng(seed)
    round_idx = rng.integers(0, num.size, size=(resamples, num.size))
    logs = np.log(num / den)
    boot = np.exp(_trimmed_mean(logs[round_idx], axis=1))
    return _interval(float(np.exp(_trimmed_mean(logs, axis=0))), boot, confidence)


#: The wall clock counts as contended when a model's typical (median) block got less than this share of
#: its best (90th percentile) CPU share: most blocks lost a good part of their time to other processes.
CONTENDED_SHARE = 0.85


#: The wall clock counts as contended when, in most blocks, other processes kept at least this many cores
#: (of the ones this process may use) busy.
OTHERS_BUSY_CORES = 0.25


def contended(cpu_share: Mapping[str, np.ndarray], others_busy: Mapping[str, np.ndarray] | None = None) -> bool:
    """Whether the wall clock was contended: other processes kept this process's cores busy during most blocks
    (``others_busy``, measured from ``/proc/stat``), or most blocks of some model ran well below that model's
    best CPU share (see CONTENDED_SHARE: the only sign where the machine does not report).

    Why both: a *steady* neighbour (a core kept busy throughout) lowers every block's share alike, so the
    share's spread cannot see it, while the wall clock of each block is still stretched one-sidedly by it
    (measured on a loaded 2-core machine, 2 threads: per-round wall-clock ratios of identical models spread
    -45..+58% (5th-95th percentile), CPU-time ratios -5..+6%; a 10-round interval judged on the wall clock put
    the identical model at -14% [-26, -1]). Models whose host process does not compute (a remote device;
    share under MIN_CPU_SHARE) say nothing.
    """
    for label, others in (others_busy or {}).items():
        share = np.asarray(cpu_share.get(label, ()), dtype=np.float64)
        busy = np.asarray(others, dtype=np.float64)
        if busy.size >= 4 and share.size and float(np.median(share)) >= MIN_CPU_SHARE \
                and float(np.median(busy)) >= OTHERS_BUSY_CORES:
            return True
    for share in cpu_share.values():
        arr = np.asarray(share, dtype=np.float64)
        if arr.size >= 4:
            best = float(np.quantile(arr, 0.9))
            if best >= MIN_CPU_SHARE and float(np.median(arr)) < CONTENDED_SHARE * best:
                return True
    return False


def ratio_to_constant_interval(numerator: np.ndarray | list[list[float]], constant: float, percentile: str, *,
                               confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> Interval:
    """``percentile(numerator) / constant``: against a recorded number, whose own noise is unknown."""
    inner = percentile_interval(numerator, percentile, confidence=confidence, resamples=resamples, seed=seed)
    return inner.scaled(1.0 / constant)


def decide_at_most(interval: Interval, bound: float) -> str:
    """'pass' if the whole interval is at or under ``bound``, 'fail' if wholly over, else 'inconclusive'."""
    if interval.high <= bound:
        return "pass"
    if interval.low > bound:
        return "fail"
    return "inconclusive"


def decide_at_least(interval: Interval, bound: float) -> str:
    """'pass' if the whole interval is at or over ``bound``, 'fail' if wholly under, else 'inconclusive'."""
    if interval.low >= bound:
        return "pass"
    if interval.high < bound:
        return "fail"
    return "inconclusive"


# ------------------------------------------------------------------------------------------ disturbed rounds
#: A block whose process CPU time per wall second falls below this share of that model's usual one was
#: descheduled for part of it (another process had the core).
DESCHEDULED_SHARE = 0.75
#: A model's usual CPU share below this means the host process does not do the work (a remote device, a
#: sleeping fake): the CPU-time test says nothing then.
MIN_CPU_SHARE = 0.05
#: A block whose lower quintile is this much slower than that model's usual one, *and* beyond
#: ``SLOW_MADS`` robust standard deviations of the rounds, was disturbed throughout.
SLOW_FACTOR = 1.25
SLOW_MADS = 4.0


@dataclass(frozen=True)
class RoundFilter:
    """Which interleaved rounds a verdict is judged on, and why the others were discarded."""

    keep: np.ndarray
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def kept(self) -> int:
        return int(self.keep.sum())

    @property
    def discarded(self) -> int:
        return int(self.keep.size - self.keep.sum())

    @property
    def too_disturbed(self) -> bool:
        """More than half the rounds were disturbed: "usual" is itself unknown, so nothing can be decided."""
        return self.discarded * 2 > self.keep.size

    def describe(self) -> str:
        if not self.discarded:
            return f"{self.kept} rounds, none disturbed"
        why = ", ".join(f"{n} {reason}" for reason, n in sorted(self.reasons.items()))
        return f"{self.discarded} of {self.keep.size} rounds discarded as disturbed ({why})"


def disturbed_rounds(blocks: Mapping[str, np.ndarray], cpu_share: Mapping[str, np.ndarray] | None = None
                     ) -> RoundFilter:
    """Flag the rounds in which any model's block was disturbed; a round is kept or dropped whole.

    Dropping whole rounds keeps the models paired (every kept round still has every model's block, so
    drift still cancels in ratios). Two tests, each against that model's own usual (median) round, so
    a model that is simply slower, or a machine that drifts slowly, is never flagged:

    * ``descheduled``: the process's CPU time over the block's wall time fell below 75% of the model's
      usual share: for part of the block its threads were waiting for a core another process held.
    * ``slow``: the block's lower quintile is over 25% and over 4 robust standard deviations (1.4826 x
      MAD of the log) above the model's usual: even its fastest calls were slowed.

    ``blocks`` maps each model to its (rounds, calls) milliseconds; ``cpu_share`` to its per-round
    CPU-seconds per wall-second (None: the CPU test is skipped).
    """
    arrays = {label: np.asarray(a, dtype=np.float64) for label, a in blocks.items()}
    n = next(iter(arrays.values())).shape[0] if arrays else 0
    descheduled = np.zeros(n, dtype=bool)
    slow = np.zeros(n, dtype=bool)
    if n >= 4:  # fewer rounds give no usual to compare with
        for label, arr in arrays.items():
            logs = np.log(np.maximum(round_statistic(arr, "low"), 1e-12))
            centre = np.median(logs)
            spread = 1.4826 * np.median(np.abs(logs - centre))
            slow |= logs - centre > max(np.log(SLOW_FACTOR), SLOW_MADS * spread)
            if cpu_share is not None and label in cpu_share:
                share = np.asarray(cpu_share[label], dtype=np.float64)
                usual = float(np.median(share))
                if usual >= MIN_CPU_SHARE:
                    descheduled |= share < DESCHEDULED_SHARE * usual
    reasons = {}
    if descheduled.any():
        reasons["descheduled"] = int(descheduled.sum())
    if (slow & ~descheduled).any():
        reasons["slow"] = int((slow & ~descheduled).sum())
    return RoundFilter(~(descheduled | slow), reasons)
