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
from edgecraft.errors import InputError, RuntimeFailure
from edgecraft.feeds import BoundData, samples_first
from edgecraft.metrics import Metric
from edgecraft.modelio import ModelIO, synthetic_feeds
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


Outputs = dict[str, np.ndarray]
"""Every output of a model over a dataset, by name, sample axis first."""


def run_outputs(session: Session, data: BoundData, batch_size: int, *, progress: Progress | None = None,
                label: str = "") -> Outputs:
    """Every output for every sample, batched (within what the model's inputs allow).

    Falls back to one sample per call when the runtime refuses the batch (a graph whose batch axis
    is fixed inside, although its inputs say otherwise).
    """
    progress = progress or NullProgress()
    io = data.io
    names = io.output_names
    batch = data.effective_batch(batch_size)

    def call(index: slice) -> list[np.ndarray]:
        raw = session.run(data.feeds(index))
        return samples_first(list(raw), io, index.stop - index.start)

    try:
        first = call(slice(0, min(batch, len(data))))
    except InputError:
        raise
    except Exception:
        batch = 1
        try:
            first = call(slice(0, 1))
        except Exception as exc:
            raise RuntimeFailure(f"running {label or 'the model'} on dataset {data.name!r} failed: "
                                 f"{type(exc).__name__}: {str(exc)[:500]}") from exc
    if not names:
        names = [f"output{i}" for i in range(len(first))]
    parts: list[list[np.ndarray]] = [[o] for o in first]
    starts = range(batch, len(data), batch)
    for start in progress.track(starts, total=len(starts), description=f"evaluating {label}"):
        for i, out in enumerate(call(slice(start, min(start + batch, len(data))))):
            parts[i].append(out)
    result: Outputs = {}
    for name, blocks in zip(names, parts, strict=False):
        try:
            result[name] = np.concatenate(blocks, axis=0)
        except ValueError as exc:  # e.g. a sequence output whose length varies per call
            raise RuntimeFailure(f"{label or 'the model'}: output {name!r} changes shape between calls "
                                 f"({sorted({b.shape[1:] for b in blocks})}); evaluate with batch_size 1 or pad "
                                 "the data") from exc
        if result[name].shape[0] != len(data):
            raise RuntimeFailure(f"{label or 'the model'} returned {result[name].shape[0]} samples of output "
                                 f"{name!r} for {len(data)} inputs")
    return result


def check_finite(outputs: Outputs, *, label: str, allow: bool = False) -> None:
    """NaN or Inf in a model's outputs: exit 2 naming the output (a gate must not pass on garbage)."""
    if allow:
        return
    for name, array in outputs.items():
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            bad = int((~np.isfinite(array)).reshape(array.shape[0], -1).any(axis=1).sum())
            raise InputError(f"{label}: output {name!r} is NaN or Inf for {bad} of {array.shape[0]} samples",
                             hint="check the model's weights and the data; set evaluation.allow_non_finite: true "
                                  "only for a metric that expects them")


def compute_metrics(outputs: Outputs, labels: np.ndarray | None, metrics: list[Metric],
                    reference: Outputs | None, *, primary: str, dataset: str = "") -> dict[str, float]:
    """Each metric on the outputs; most read the ``primary`` output, a metric may ask for all of them."""
    values: dict[str, float] = {}
    if primary not in outputs:
        raise InputError(f"evaluation.output = {primary!r}: the model has no such output; its outputs: "
                         f"{sorted(outputs)}")
    for metric in metrics:
        if metric.needs_labels and labels is None:
            raise InputError(f"metric {metric.name!r} needs labels but dataset {dataset!r} has none; "
                             "use agreement or cosine for unlabeled data")
        if metric.needs_reference and reference is None:
            raise RuntimeFailure(f"metric {metric.name!r} needs the baseline's outputs")
        if metric.all_outputs:
            value = metric.compute(outputs, labels, reference)  # type: ignore[arg-type]
        else:
            value = metric.compute(outputs[primary], labels, None if reference is None else reference[primary])
        values[metric.name] = float(value)
    return values


class InterleavedTimer:
    """Times several sessions in interleaved rounds and keeps every round's samples.

    Each round runs a block of ``per_round`` timed calls per session, in a freshly shuffled order, so
    machine drift hits every session alike. Blocks, not single calls in turn: ONNX Runtime's intra-op
    threads keep spinning for a while after a call, so alternating sessions call by call makes each
    one compete with the other's spinning threads (measured here: it scrambled a 10% difference).
    The rounds are kept apart (not only pooled) because the gate's bootstrap resamples them as units
    (see :mod:`edgecraft.verify.stats`), and more rounds can be taken later (:meth:`take`) when a verdict is
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


def latency_feeds(io: ModelIO, batch_size: int, seed: int, data: BoundData | None) -> dict[str, np.ndarray]:
    """The one set of inputs every model is timed on: real samples when there is data, else seeded stand-ins."""
    batch = batch_size if io.max_batch is None else min(batch_size, io.max_batch)
    if data is not None and len(data) >= batch:
        return data.feeds(slice(0, batch))
    return synthetic_feeds(io, batch, seed)
