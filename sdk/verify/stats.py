"""Confidence intervals for latency verdicts: bootstraps over interleaved rounds.

Why this shape: on a shared machine the dominant noise is *drift* (another job starts, the clock
changes) that hits every model measured in the same round alike, plus per-call jitter inside a
round. Latency is therefore measured in rounds where every model runs a block of calls in shuffled
order (:class:`edgecraft.verify.measure.InterleavedTimer`), and the round is the unit the bootstrap resamples:

* a **ratio** of two models at p50 (speedup, regression vs a reference) is judged per round (the
  ratio of the two medians inside one round, where drift cancels), summarized over rounds by a
  robust mean of log-ratios, with a bootstrap over rounds;
* a **single model's percentile** (a ``max_ms`` ceiling) and tail-percentile ratios use a paired
  two-stage (hierarchical) bootstrap: rounds, then calls within each chosen round. It is
  conservative, which for a release gate is the right side to err on: too wide an interval yields
  "inconclusive" and more measuring, never a false verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def _as_rounds(rounds: np.ndarray | list[list[float]]) -> np.ndarray:
    arr = np.asarray(rounds, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"expected a (rounds, calls) array of latencies, got shape {arr.shape}")
    return arr


def _resample(arr: np.ndarray, round_idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(B, R*n) pooled samples: rounds chosen by ``round_idx`` (B, R), then calls within each round."""
    b, r = round_idx.shape
    n = arr.shape[1]
    call_idx = rng.integers(0, n, size=(b, r, n))
    return arr[round_idx[:, :, None], call_idx].reshape(b, r * n)


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
    boot = np.percentile(_resample(arr, round_idx, rng), q, axis=1)
    return _interval(float(np.percentile(arr, q)), boot, confidence)


def _trimmed_mean(values: np.ndarray, axis: int, trim: float = 0.25) -> np.ndarray:
    """Mean of the middle ``1 - 2*trim`` of the values along ``axis`` (robust to a few disturbed rounds)."""
    ordered = np.sort(values, axis=axis)
    n = ordered.shape[axis]
    cut = int(np.floor(n * trim))
    keep = np.take(ordered, np.arange(cut, n - cut), axis=axis)
    return keep.mean(axis=axis)


def ratio_interval(numerator: np.ndarray | list[list[float]], denominator: np.ndarray | list[list[float]],
                   percentile: str, *, confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> Interval:
    """Confidence interval of the latency ratio ``numerator / denominator`` of two models measured in the
    same interleaved rounds.

    For ``p50`` the statistic is per round: the ratio of the two models' medians *within* each round
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
        logs = np.log(np.median(num, axis=1) / np.median(den, axis=1))
        boot = np.exp(_trimmed_mean(logs[round_idx], axis=1))
        return _interval(float(np.exp(_trimmed_mean(logs, axis=0))), boot, confidence)
    q = PERCENTILES[percentile]
    boot = (np.percentile(_resample(num, round_idx, rng), q, axis=1)
            / np.percentile(_resample(den, round_idx, rng), q, axis=1))
    return _interval(float(np.percentile(num, q) / np.percentile(den, q)), boot, confidence)


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
