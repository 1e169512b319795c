"""Measurement: accuracy on the target runtime, and latency with warm-up, interleaving and percentiles.

Latency on a shared machine drifts by tens of percent between minutes. Measuring the baseline and
the candidate in alternating rounds (in a shuffled order each round) exposes both to the same drift,
so their ratio stays meaningful even when absolute times move.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from edgecraft.backend import Session
from edgecraft.errors import InputError, RuntimeFailure
from edgecraft.feeds import BoundData, samples_first
from edgecraft.metrics import Metric
from edgecraft.modelio import ModelIO, synthetic_feeds
from edgecraft.plan import LatencySpec
from edgecraft.progress import NullProgress, Progress
from edgecraft.verify.stats import LOW_QUANTILE, RoundFilter, disturbed_rounds


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
                    reference: Outputs | None, *, primary: str, dataset: str = "",
                    mask: np.ndarray | None = None) -> dict[str, float]:
    """Each metric on the outputs; most read the ``primary`` output, a metric may ask for all of them. ``mask``:
    the samples' ``evaluation.mask_input`` (1 = token, 0 = padding), for metrics that set ``needs_mask``."""
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
        if metric.needs_mask and mask is None:
            raise InputError(f"metric {metric.name!r} needs the attention mask: set evaluation.mask_input to the "
                             "model input that holds it (1 = token, 0 = padding)",
                             hint="e.g. evaluation: {mask_input: attention_mask}; or use 'cosine'")
        if metric.all_outputs:
            whole: Callable[..., float] = metric.compute  # it reads every output: it takes them all, by name
            value = whole(outputs, labels, reference)
        elif metric.needs_mask:
            masked: Callable[..., float] = metric.compute  # it takes the mask as a keyword
            try:
                value = masked(outputs[primary], labels, None if reference is None else reference[primary], mask=mask)
            except InputError as exc:
                raise InputError(f"dataset {dataset!r}, metric {metric.name!r}: {exc.message}",
                                 hint=exc.hint) from exc
        else:
            try:
                value = metric.compute(outputs[primary], labels, None if reference is None else reference[primary])
            except InputError as exc:  # the metric found the data unusable: name the dataset
                raise InputError(f"dataset {dataset!r}, metric {metric.name!r}: {exc.message}",
                                 hint=exc.hint) from exc
        values[metric.name] = float(value)
    return values


def machine_busy_seconds() -> float | None:
    """CPU seconds every process has spent on the cores this process may run on (``/proc/stat``), or None
    where there is no ``/proc/stat``. Minus this process's own CPU time over a block, it is the time other
    processes took those cores away: the direct measure of a contended wall clock."""
    try:
        cores = {f"cpu{c}" for c in os.sched_getaffinity(0)}
        with open("/proc/stat") as fh:
            lines = [line.split() for line in fh if line.startswith("cpu") and not line.startswith("cpu ")]
    except (OSError, AttributeError):
        return None
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    busy = 0
    for fields in lines:
        if fields[0] in cores and len(fields) >= 8:
            user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[1:8])
            busy += user + nice + system + irq + softirq
    return busy / ticks


def timed_block(session: Session, feeds: Mapping[str, np.ndarray],
                calls: int) -> tuple[list[float], list[float] | None]:
    """Wall seconds per call, and this process's CPU seconds per call when the session is timed on this process's
    own clock (it keeps :meth:`Session.timed_runs`), else None (a remote device's timer, a synthetic session).

    Why per call: under contention a call can burn far more CPU than its work (ONNX Runtime's caller spin-waits
    in a parallel section for an intra-op thread another process descheduled; measured on a loaded 2-core machine,
    ResNet-18-sized, 2 threads: single calls of 73 ms CPU among 18 ms ones), so a block's mean CPU time is as
    one-sided as its wall time. A low quantile of the calls' CPU times is not (see ``cpu_ms_per_call``).
    """
    if type(session).timed_runs is not Session.timed_runs:
        return session.timed_runs(feeds, calls), None
    walls, cpus = [], []
    for _ in range(calls):
        cpu0, wall0 = time.process_time(), time.perf_counter()
        session.run(feeds)
        walls.append(time.perf_counter() - wall0)
        cpus.append(time.process_time() - cpu0)
    return walls, cpus


class InterleavedTimer:
    """Times several sessions in interleaved rounds and keeps every round's samples.

    Each round runs a block of ``per_round`` timed calls per session, in a freshly shuffled order, so
    machine drift hits every session alike. Blocks, not single calls in turn: ONNX Runtime's intra-op
    threads keep spinning for a while after a call, so alternating sessions call by call makes each
    one compete with the other's spinning threads (measured here: it scrambled a 10% difference).
    The rounds are kept apart (not only pooled) because the gate's bootstrap resamples them as units
    (see :mod:`edgecraft.verify.stats`), and more rounds can be taken later (:meth:`take`) when a verdict is
    still inconclusive.

    ``per_round`` follows the model, not a fixed count: the warm-up's calls give each session's
    latency, and the slowest one's block is sized to last ``spec.round_ms`` (clamped to
    ``[min_calls, max_calls]``, and to ``repeats // rounds`` when a plan still sets ``repeats``). Every
    block also records the process's CPU time, so rounds in which the timed process was descheduled
    can be found (:meth:`round_filter`).
    """

    def __init__(self, sessions: Mapping[str, Session], feeds: Mapping[str, np.ndarray], spec: LatencySpec, *,
                 progress: Progress | None = None) -> None:
        self.sessions = dict(sessions)
        #: One label per distinct session object, and the other labels that name the same one (a plan without
        #: steps: the baseline *is* the compressed artifact, one session): each session is timed once per
        #: round and its blocks recorded under every label it has, so no work is measured twice.
        self._aliases: dict[str, list[str]] = {}
        for label, session in self.sessions.items():
            first = next((t for t in self._aliases if self.sessions[t] is session), None)
            if first is None:
                self._aliases[label] = []
            else:
                self._aliases[first].append(label)
        self.feeds = feeds
        self.spec = spec
        self.progress = progress or NullProgress()
        self.per_round = self._cap(spec.max_calls)
        #: The slowest session's warm-up latency in ms (None before the warm-up).
        self.latency_estimate_ms: float | None = None
        self._rng = random.Random(spec.seed)
        self._rounds: dict[str, list[list[float]]] = {label: [] for label in self.sessions}
        self._cpu_share: dict[str, list[float]] = {label: [] for label in self.sessions}
        self._cpu_seconds: dict[str, list[float]] = {label: [] for label in self.sessions}
        #: Per block: CPU seconds of each call (None: the session is not timed on this process's clock).
        self._cpu_calls: dict[str, list[list[float] | None]] = {label: [] for label in self.sessions}
        self._wall_seconds: dict[str, list[float]] = {label: [] for label in self.sessions}
        #: Per block: other processes' CPU seconds per wall second on this process's cores (None: unknown).
        self._others: dict[str, list[float | None]] = {label: [] for label in self.sessions}
        self._round_seconds: list[float] = []
        self._warm = False
        self.warmup_seconds = 0.0
        #: How many times the verdicts on these rounds were judged (set by the gate's sequential check).
        self.look = 1

    def _cap(self, calls: int) -> int:
        spec = self.spec
        calls = max(spec.min_calls, min(spec.max_calls, calls))
        if spec.repeats is not None:
            calls = min(calls, max(1, spec.repeats // spec.rounds))
        return max(1, calls)

    def warm_up(self) -> None:
        """Untimed calls for every session, whose times set the number of calls per round."""
        slowest = 0.0
        started = time.perf_counter()
        for label in self._aliases:
            times = self.sessions[label].timed_runs(self.feeds, max(self.spec.warmup, 1))
            tail = times[len(times) // 2:] or times  # the first calls pay one-off costs (allocation, caches)
            slowest = max(slowest, float(np.median(tail)))
        self.latency_estimate_ms = slowest * 1e3
        calls = math.ceil(self.spec.round_ms / 1e3 / slowest) if slowest > 0 else self.spec.max_calls
        self.per_round = self._cap(calls)
        self.warmup_seconds = time.perf_counter() - started
        self._warm = True

    def round_estimate_s(self) -> float:
        """Expected seconds of the next round: the median of the rounds so far, else from the warm-up."""
        if self._round_seconds:
            return float(np.median(self._round_seconds[-9:]))
        per_call = (self.latency_estimate_ms or 0.0) / 1e3
        return per_call * self.per_round * len(self._aliases)

    def take(self, rounds: int, *, description: str = "latency", deadline: float | None = None) -> int:
        """Measure up to ``rounds`` more interleaved rounds (warming up first if not done yet).

        With a ``deadline`` (a ``time.monotonic()`` value) the clock is checked before every round and no
        round is started that would not end before it (judged by the rounds so far), so a time budget is
        overrun by at most one unexpectedly slow round. Returns the rounds taken.
        """
        if not self._warm:
            self.warm_up()
        labels = list(self._aliases)
        taken = 0
        for _ in self.progress.track(range(rounds), total=rounds, description=description):
            if deadline is not None and time.monotonic() + self.round_estimate_s() > deadline:
                break
            self._rng.shuffle(labels)
            round_start = time.perf_counter()
            for label in labels:
                busy0, cpu0, wall0 = machine_busy_seconds(), time.process_time(), time.perf_counter()
                block, cpu_calls = timed_block(self.sessions[label], self.feeds, self.per_round)
                wall = time.perf_counter() - wall0
                cpu = time.process_time() - cpu0
                busy1 = machine_busy_seconds()
                others = None if busy0 is None or busy1 is None or wall <= 0 else max(0.0, (busy1 - busy0) - cpu) / wall
                for name in (label, *self._aliases[label]):
                    self.record_block(name, block, cpu_calls, cpu_seconds=cpu, wall_seconds=wall, others_busy=others)
            self._round_seconds.append(time.perf_counter() - round_start)
            taken += 1
        return taken

    def record_block(self, label: str, block: list[float], cpu_calls: list[float] | None, *, cpu_seconds: float,
                     wall_seconds: float, others_busy: float | None) -> None:
        """Keep one session's block of a round: per-call seconds, per-call CPU seconds (None: not on this
        process's clock), the block's CPU and wall seconds, and other processes' busy cores during it. Called by
        :meth:`take` for every block; a replay of recorded blocks (the contention tests) calls it the same way."""
        self._rounds[label].append(block)
        self._cpu_seconds[label].append(cpu_seconds)
        self._cpu_calls[label].append(cpu_calls)
        self._wall_seconds[label].append(wall_seconds)
        self._cpu_share[label].append(cpu_seconds / wall_seconds if wall_seconds > 0 else 0.0)
        self._others[label].append(others_busy)

    @property
    def n_rounds(self) -> int:
        return len(next(iter(self._rounds.values()), []))

    @property
    def seconds(self) -> float:
        """Wall seconds spent in timed rounds (warm-up excluded)."""
        return float(sum(self._round_seconds))

    def rounds_ms(self, label: str, keep: np.ndarray | None = None) -> np.ndarray:
        """(rounds, calls) milliseconds of one session (only the rounds where ``keep`` is true, if given)."""
        arr = np.asarray(self._rounds[label], dtype=np.float64) * 1e3
        return arr if keep is None else arr[keep]

    def cpu_share(self, label: str) -> np.ndarray:
        """Per round: the process's CPU seconds per wall second during this session's block."""
        return np.asarray(self._cpu_share[label], dtype=np.float64)

    def others_busy(self, label: str) -> np.ndarray | None:
        """Per round: other processes' CPU seconds per wall second (in cores) on this process's cores during
        this session's block; None where the machine does not say (no ``/proc/stat``)."""
        values = self._others.get(label, [])
        if not values or any(v is None for v in values):
            return None
        return np.asarray(values, dtype=np.float64)

    def _others_busy_all(self) -> float | None:
        arrays = [self.others_busy(label) for label in self.sessions]
        if not arrays or any(a is None or a.size == 0 for a in arrays):
            return None
        return float(np.median(np.concatenate([a for a in arrays if a is not None])))

    def cpu_ms_per_call(self, label: str, keep: np.ndarray | None = None) -> np.ndarray:
        """Per round: the process's CPU milliseconds per call during this session's block: the lower quintile of
        its calls' CPU times where each call was timed (:func:`timed_block`), else the block's mean.

        Being descheduled does not add CPU time, so on a contended machine this moves far less than wall
        time. It is the work of every thread of the process, so with several intra-op threads it stands for
        latency only as far as both models parallelize alike. Why the lower quintile, not the mean: a call can
        still burn extra CPU under contention (a caller spin-waiting for a descheduled intra-op thread), never
        less than its work. Measured on this 2-core machine, load average 8.6, one core kept busy, 2 threads,
        ResNet-18-sized (300 rounds of two identical sessions): the per-round ratio's spread (sd of the log) was
        48% in wall time, 8.9% for the block's mean CPU time, 5.8% for the calls' lower quintile.
        """
        calls = self._cpu_calls[label]
        if calls and all(c is not None for c in calls):
            arr = np.quantile(np.asarray(calls, dtype=np.float64), LOW_QUANTILE, axis=1) * 1e3
        else:
            arr = np.asarray(self._cpu_seconds[label], dtype=np.float64) * 1e3 / self.per_round
        return arr if keep is None else arr[keep]

    def host_timed(self, label: str) -> bool:
        """Whether this session's reported call times are this process's own wall clock (their sum matches
        the block's wall time), so that its CPU time is the model's work. Not so for a remote device whose
        own timer reports, or for a fake session returning synthetic times."""
        reported = np.asarray(self._rounds[label], dtype=np.float64).sum(axis=1)
        wall = np.asarray(self._wall_seconds[label], dtype=np.float64)
        if reported.size == 0:
            return False
        return bool(0.5 <= float(np.median(reported / np.maximum(wall, 1e-12))) <= 1.5)

    def round_filter(self, labels: list[str] | None = None) -> RoundFilter:
        """Which rounds are undisturbed for the given sessions (default: all); see :func:`disturbed_rounds`."""
        chosen = labels or list(self.sessions)
        # CPU time says something only about sessions timed on this process's own clock
        return disturbed_rounds({label: self.rounds_ms(label) for label in chosen},
                                {label: self.cpu_share(label) for label in chosen if self.host_timed(label)})

    def stats(self) -> dict[str, LatencyStats]:
        return {label: LatencyStats.from_seconds([t for block in rounds for t in block])
                for label, rounds in self._rounds.items()}

    def describe(self) -> dict[str, object]:
        """How the timing went, for the report: calls per round, rounds, seconds, disturbed rounds."""
        flt = self.round_filter()
        return {"calls_per_round": self.per_round, "round_ms": self.spec.round_ms,
                "latency_estimate_ms": None if self.latency_estimate_ms is None else round(self.latency_estimate_ms, 4),
                "rounds": self.n_rounds, "seconds": round(self.seconds, 3),
                "others_busy_cores": None if (busy := self._others_busy_all()) is None else round(busy, 3),
                "warmup_seconds": round(self.warmup_seconds, 3), "looks": self.look,
                "rounds_discarded": flt.discarded, "discard_reasons": dict(flt.reasons)}


def measure_latency(sessions: Mapping[str, Session], feeds: Mapping[str, np.ndarray], spec: LatencySpec, *,
                    progress: Progress | None = None) -> dict[str, LatencyStats]:
    """Interleaved latency of several sessions on the same input.

    Every session gets ``spec.warmup`` untimed calls, then ``spec.rounds`` rounds; in each round the
    sessions run ``per_round`` timed calls each (see :class:`InterleavedTimer`), in a freshly shuffled order.
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
