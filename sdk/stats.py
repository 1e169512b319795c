"""Confidence intervals for latency verdicts: a paired, two-stage bootstrap over interleaved rounds.

Why this shape: on a shared machine the dominant noise is *drift* (another job starts, the clock
changes) that hits every model measured in the same round alike, plus per-call jitter inside a
round. Latency is therefore measured in rounds where every model runs a block of calls in shuffled
order (:func:`edgecraft.measure.measure_rounds`). The bootstrap resamples whole **rounds** (the same
round indices for both models, so shared drift cancels in a ratio, which is what interleaving is
for) and then calls **within** each chosen round (per-call jitter). Resampling both stages is the
hierarchical bootstrap; it is conservative, which for a release gate is the right side to err on:
too wide an interval yields "inconclusive" and more measuring, never a false verdict.

A percentile of the pooled samples is the statistic, so ``p50``/``p95``/``p99`` contracts are all
judged on the percentile they name.
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


def ratio_interval(numerator: np.ndarray | list[list[float]], denominator: np.ndarray | list[list[float]],
                   percentile: str, *, confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> Interval:
    """Confidence interval of ``percentile(numerator) / percentile(denominator)`` for two models measured
    in the same interleaved rounds (paired: one set of round indices serves both)."""
    num, den = _as_rounds(numerator), _as_rounds(denominator)
    if num.shape[0] != den.shape[0]:
        raise ValueError(f"paired rounds differ in number: {num.shape[0]} vs {den.shape[0]}")
    q = PERCENTILES[percentile]
    rng = np.random.default_rng(seed)
    round_idx = rng.integers(0, num.shape[0], size=(resamples, num.shape[0]))
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
