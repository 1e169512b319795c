"""The noise-aware Pareto front, the best candidate, and hypervolume.

Every objective is oriented "lower is better" (accuracy is negated) and carries an interval:

* latency: the candidate/baseline percentile ratio with its bootstrap confidence interval from the
  trial's own interleaved rounds (the same interval the gate judges a speedup contract on). Ratios
  of different trials are comparable because each is normalized by the baseline timed in the same
  rounds, which absorbs the machine's drift between trials;
* peak memory: the [min, max] range over the repeated child processes;
* accuracy (fixed evaluation set, deterministic runtime), size and MACs: exact, a zero-width interval.

**Dominance is decided only outside the intervals.** Candidate A beats B on an objective only when
A's whole interval lies below B's (``A.high < B.low``); overlapping intervals are a tie. A dominates B
when it is not beaten on any objective and beats B on at least one. So a candidate whose only
advantage is a latency gain inside the measurement noise is dominated by one that is as fast (within
noise) and strictly smaller, and does not appear on the front.

The **best candidate** meets every contract; among those, the search's objectives are applied in
priority order with the same tolerance: keep the candidates not beaten by the leader of the first
objective, then of the second among them, and so on; the leader of the last decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

#: Objectives whose raw value grows with quality (negated for "lower is better").
MAXIMIZED = ("accuracy",)


@dataclass(frozen=True)
class Value:
    """One objective of one candidate, lower is better: estimate and interval."""

    estimate: float
    low: float
    high: float

    @classmethod
    def exact(cls, value: float) -> Value:
        return cls(value, value, value)

    def beats(self, other: Value) -> bool:
        return self.high < other.low


def dominates(a: Sequence[Value], b: Sequence[Value]) -> bool:
    """A dominates B: not beaten by B on any objective, and beats B on at least one (outside the intervals)."""
    return not any(y.beats(x) for x, y in zip(a, b, strict=True)) and any(
        x.beats(y) for x, y in zip(a, b, strict=True))


def front(points: dict[int, Sequence[Value]]) -> list[int]:
    """Keys of the candidates no other candidate dominates."""
    return [k for k, p in points.items() if not any(dominates(q, p) for j, q in points.items() if j != k)]


def pick_best(points: dict[int, Sequence[Value]]) -> int | None:
    """Lexicographic choice with noise-aware ties (see the module docstring); ``points`` in priority order."""
    pool = list(points)
    if not pool:
        return None
    n = len(next(iter(points.values())))
    for i in range(n):
        leader = min(pool, key=lambda k, i=i: points[k][i].estimate)
        pool = [k for k in pool if not points[leader][i].beats(points[k][i])]
        if i == n - 1:
            return min(pool, key=lambda k, i=i: (points[k][i].estimate, k))
    return pool[0]


def hypervolume(points: list[tuple[float, ...]], reference: tuple[float, ...]) -> float:
    """Hypervolume (minimization) dominated by ``points`` up to ``reference``, for 1-3 objectives.

    Exact, by slicing along the first objective (n² log n; the fronts here have tens of points).
    Points not strictly better than the reference on every objective contribute nothing.
    """
    pts = [p for p in points if all(x < r for x, r in zip(p, reference, strict=True))]
    if not pts:
        return 0.0
    dims = len(reference)
    if dims == 1:
        return reference[0] - min(p[0] for p in pts)
    if dims == 2:
        volume, best_y = 0.0, reference[1]
        for x, y in sorted(pts):
            if y < best_y:
                volume += (reference[0] - x) * (best_y - y)
                best_y = y
        return volume
    if dims != 3:
        raise ValueError("hypervolume is implemented for 1 to 3 objectives")
    pts.sort()
    volume = 0.0
    for i, p in enumerate(pts):
        upper = pts[i + 1][0] if i + 1 < len(pts) else reference[0]
        if upper <= p[0]:
            continue
        area = hypervolume([q[1:] for q in pts[:i + 1]], reference[1:])
        volume += (upper - p[0]) * area
    return volume
