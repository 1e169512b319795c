"""Measurement: accuracy on the target runtime, and latency with warm-up, interleaving and percentiles.

Latency on a shared machine drifts by tens of percent between minutes. Measuring the baseline and
the candidate in alternating rounds (in a shuffled order each round) exposes both to the same drift,
so their ratio stays meaningful even when absolute times move.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from edgecraft.backend import Session
from edgecraft.datasets import Dataset
from edgecraft.errors import InputError, RuntimeFailure
from edgecraft.metrics import Metric
from edgecraft.plan import LatencySpec
from edgecraft.progress import NullProgress, Progress


@dataclass(frozen=True)
class LatencyStats:
    """Milliseconds per call."""

    p50: float
    p95: float
    p99: float
    mean: float
    min: float
    n: int
    samples: tuple[float, ...]

    @classmethod
    def from_seconds(cls, seconds: list[float]) -> LatencyStats:
        ms = np.asarray(seconds, dtype=np.float64) * 1e3
        p50, p95, p99 = np.percentile(ms, [50, 95, 99])
        return cls(float(p50), float(p95), float(p99), float(ms.mean()), float(ms.min()), len(ms),
                   tuple(float(round(v, 5)) for v in ms))

    def percentile(self, name: str) -> float:
        return float(getattr(self, name))

    def as_dict(self, *, with_samples: bool = True) -> dict[str, object]:
        out: dict[str, object] = {"p50": self.p50, "p95": self.p95, "p99": self.p99, "mean": self.mean,
                                  "min": self.min, "n": self.n}
        if with_samples:
            out["samples"] = list(self.samples)
        return out


def run_outputs(session: Session, dataset: Dataset, batch_size: int, *, progress: Progress | None = None,
                label: str = "") -> np.ndarray:
    """First output for every sample, batched; falls back to batch 1 for fixed-batch models."""
    name = session.input_names[0]
    progress = progress or NullProgress()
    outputs: list[np.ndarray] = []
    batch = batch_size
    try:
        first = session.run({name: dataset.x[:batch]})[0]
    except Exception:
        batch = 1  # the model's batch axis is fixed; evaluate sample by sample
        try:
            first = session.run({name: dataset.x[:1]})[0]
        except Exception as exc:
            raise RuntimeFailure(f"running {label or 'the model'} on dataset {dataset.name!r} failed: "
                                 f"{type(exc).__name__}: {exc}") from exc
    outputs.append(first)
    starts = range(batch, len(dataset), batch)
    for start in progress.track(starts, total=len(starts), description=f"evaluating {label}"):
        outputs.append(session.run({name: dataset.x[start:start + batch]})[0])
    result = np.concatenate(outputs, axis=0)
    if result.shape[0] != len(dataset):
        raise RuntimeFailure(f"{label or 'the model'} returned {result.shape[0]} outputs for {len(dataset)} samples")
    return result


def compute_metrics(outputs: np.ndarray, dataset: Dataset, metrics: list[Metric],
                    reference: np.ndarray | None) -> dict[str, float]:
    values: dict[str, float] = {}
    for metric in metrics:
        if metric.needs_labels and dataset.y is None:
            raise InputError(f"metric {metric.name!r} needs labels but dataset {dataset.name!r} has none; "
                             "use agreement or cosine for unlabeled data")
        if metric.needs_reference and reference is None:
            raise RuntimeFailure(f"metric {metric.name!r} needs the baseline's outputs")
        values[metric.name] = float(metric.compute(outputs, dataset.y, reference))
    return values


class InterleavedTimer:
    """Times several sessions in interleaved rounds and keeps every round's samples.

    Each round runs a block of ``per_round`` timed calls per session, in a freshly shuffled order, so
    machine drift hits every session alike. Blocks, not single calls in turn: ONNX Runtime's intra-op
    threads keep spinning for a while after a call, so alternating sessions call by call makes each
    one compete with the other's spinning threads (measured here: it scrambled a 10% difference).
    The rounds are kept apart (not only pooled) because the gate's bootstrap resamples them as units
    (see :mod:`edgecraft.stats`), and more rounds can be taken later (:meth:`take`) when a verdict is
    still inconclusive.
    """

    def __init__(self, sessions: Mapping[str, Session], feeds: Mapping[str, np.ndarray], spec: LatencySpec, *,
                 progress: Progress | None = None) -> None:
        self.sessions = dict(sessions)
        self.feeds = feeds
        self.spec = spec
        self.progress = progress or NullProgress()
        self.per_round = max(1, spec.repeats // spec.rounds)
        self._rng = random.Random(spec.seed)
        self._rounds: dict[str, list[list[float]]] = {label: [] for label in self.sessions}
        self._warm = False

    def warm_up(self) -> None:
        for session in self.sessions.values():
            session.timed_runs(self.feeds, max(self.spec.warmup, 1))
        self._warm = True

    def take(self, rounds: int, *, description: str = "latency") -> None:
        """Measure ``rounds`` more interleaved rounds (warming up first if not done yet)."""
        if not self._warm:
            self.warm_up()
        labels = list(self.sessions)
        for _ in self.progress.track(range(rounds), total=rounds, description=description):
            self._rng.shuffle(labels)
            for label in labels:
                self._rounds[label].append(self.sessions[label].timed_runs(self.feeds, self.per_round))

    @property
    def n_rounds(self) -> int:
        return len(next(iter(self._rounds.values()), []))

    def rounds_ms(self, label: str) -> np.ndarray:
        """(rounds, calls) milliseconds of one session."""
        return np.asarray(self._rounds[label], dtype=np.float64) * 1e3

    def stats(self) -> dict[str, LatencyStats]:
        return {label: LatencyStats.from_seconds([t for block in rounds for t in block])
                for label, rounds in self._rounds.items()}


def measure_latency(sessions: Mapping[str, Session], feeds: Mapping[str, np.ndarray], spec: LatencySpec, *,
                    progress: Progress | None = None) -> dict[str, LatencyStats]:
    """Interleaved latency of several sessions on the same input.

    Every session gets ``spec.warmup`` untimed calls, then ``spec.rounds`` rounds; in each round the
    sessions run ``repeats / rounds`` timed calls each, in a freshly shuffled order.
    """
    timer = InterleavedTimer(sessions, feeds, spec, progress=progress)
    timer.take(spec.rounds)
    return timer.stats()


def latency_feeds(session: Session, input_shape: tuple[int, ...], batch_size: int, seed: int,
                  dataset: Dataset | None) -> dict[str, np.ndarray]:
    """The one input every model is timed on: real samples when there is data, else seeded noise."""
    shape = (batch_size, *input_shape[1:])
    if dataset is not None and len(dataset) >= batch_size and tuple(dataset.x.shape[1:]) == tuple(shape[1:]):
        x = dataset.x[:batch_size]
    else:
        x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return {session.input_names[0]: np.ascontiguousarray(x)}
