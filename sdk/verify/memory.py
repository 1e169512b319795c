"""Peak memory of a model on its target's runtime: what loading it and a warmed inference add to a process.

Definition. The peak memory of an artifact is the high-water mark of resident memory (Linux ``VmHWM``)
of a fresh child process that loads the runtime, loads the artifact through the backend's own
``load()`` and runs the inputs through ``Session.run``, *minus* the same for a child that loads the
runtime and no model (the zero). Both children reset their high-water mark (``/proc/self/clear_refs``,
"5") once the runtime is loaded, so the transient peaks of importing Python packages cancel and what
remains is the model's weights as the runtime holds them, its compiled kernels and packed weights, the
activation arena of an inference and the session's threads. Where the kernel refuses the reset the
absolute marks are subtracted instead (noted in the report); ``ru_maxrss`` stands in where ``/proc``
is missing.

Why a fresh process each time: a high-water mark only grows, and runtimes keep arenas, caches and
thread pools for the life of a process, so measuring two models in one process measures their order.
Children are started ``repeats`` times per model in alternating order (zero, baseline, candidate
shuffled each round), and the verdict is judged on the range of the per-round values: the interval
``[min, max]`` over ``n`` repeats covers the median with probability ``1 - 2**(1 - n)`` whatever the
distribution (0.75 for 3, 0.94 for 5), which is the confidence reported.

Memory is only this host's: a backend whose sessions run elsewhere (TVM over RPC, the emulated arm64
device) says so through ``Backend.measures_memory_locally`` and the report says memory was not
measured there, never the host's memory for a remote target.
"""

from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

PROBE_MARKER = "EDGECRAFT_MEMORY_PROBE "
ZERO = "zero"
STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


# ---------------------------------------------------------------------------------------- in the child
def process_memory() -> dict[str, int]:
    """This process's resident memory now (``rss``), its high-water mark (``hwm``) and ``ru_maxrss``, in bytes."""
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    maxrss *= 1 if sys.platform == "darwin" else 1024  # kB on Linux, bytes on macOS
    out = {"rss": 0, "hwm": maxrss, "maxrss": maxrss}
    try:
        for line in STATUS.read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out["rss" if key == "VmRSS" else "hwm"] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out


def reset_high_water_mark() -> bool:
    """Reset ``VmHWM`` to the current resident size (Linux >= 4.0); False where that is not possible."""
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def child_increment(result: Mapping[str, Any]) -> int:
    """What one child's process grew to after the reset (its absolute mark when the reset was refused)."""
    if result.get("reset"):
        return int(result["hwm_bytes"]) - int(result["rss_start_bytes"])
    return int(result["hwm_bytes"])


# ---------------------------------------------------------------------------------------- in the parent
@dataclass
class MemoryStats:
    """Peak memory of one model over the repeats, in bytes."""

    samples: list[int]
    process_peaks: list[int]
    zero_peaks: list[int]
    reset: bool
    runtime_stats: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> int:
        return int(np.median(self.samples))

    @property
    def cv(self) -> float:
        """Coefficient of variation over the repeats (population std / mean)."""
        mean = float(np.mean(self.samples))
        return float(np.std(self.samples) / mean) if mean > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"peak_bytes": self.median, "min_bytes": int(min(self.samples)), "max_bytes": int(max(self.samples)),
                "samples": [int(s) for s in self.samples], "cv": self.cv,
                "process_peak_bytes": int(np.median(self.process_peaks)),
                "runtime_zero_bytes": int(np.median(self.zero_peaks)), "reset": self.reset,
                "runtime_stats": self.runtime_stats}


def range_confidence(n: int) -> float | None:
    """Confidence that ``[min, max]`` of ``n`` independent samples covers their median (None for n < 2)."""
    return 1.0 - 2.0 ** (1 - n) if n >= 2 else None


class MemoryProbeError(RuntimeError):
    """A memory child failed: its command line and the end of its stderr."""


class MemoryMeter:
    """Starts the child processes for one target and keeps every round's numbers (more rounds can be taken)."""

    def __init__(self, artifacts: Mapping[str, Path], *, target: str, options: Mapping[str, Any],
                 feeds: Mapping[str, np.ndarray], threads: int, runs: int = 3, seed: int = 0,
                 timeout_s: float = 600.0) -> None:
        self.artifacts = dict(artifacts)
        self.target = target
        self.options = json.dumps(dict(options))
        self.threads = threads
        self.runs = runs
        self.timeout_s = timeout_s
        self._rng = random.Random(seed)
        self._tmp = tempfile.TemporaryDirectory(prefix="edgecraft-memory-")
        self.feeds_path = Path(self._tmp.name) / "feeds.npz"
        np.savez(self.feeds_path, **{k: np.asarray(v) for k, v in feeds.items()})
        self.rounds: list[dict[str, dict[str, Any]]] = []

    def close(self) -> None:
        self._tmp.cleanup()

    def __enter__(self) -> MemoryMeter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _child(self, label: str) -> dict[str, Any]:
        cmd = [sys.executable, "-m", "edgecraft.verify.memory_probe", "--target", self.target, "--options",
               self.options, "--feeds", str(self.feeds_path), "--threads", str(self.threads), "--runs",
               str(self.runs)]
        cmd += ["--zero"] if label == ZERO else ["--artifact", str(self.artifacts[label])]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout_s, env=env, check=False)
        except subprocess.TimeoutExpired as exc:
            raise MemoryProbeError(f"the memory probe for {label} did not finish in {self.timeout_s:g} s") from exc
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(PROBE_MARKER)]
        if proc.returncode != 0 or not lines:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-8:]
            raise MemoryProbeError(f"the memory probe for {label} exited {proc.returncode}: " + " | ".join(tail))
        return dict(json.loads(lines[-1][len(PROBE_MARKER):]))

    def take(self, rounds: int) -> None:
        """``rounds`` more rounds: each starts a zero child and one child per model, in a shuffled order."""
        for _ in range(rounds):
            labels = [ZERO, *self.artifacts]
            self._rng.shuffle(labels)
            self.rounds.append({label: self._child(label) for label in labels})

    def stats(self) -> dict[str, MemoryStats]:
        out: dict[str, MemoryStats] = {}
        for label in self.artifacts:
            samples, peaks, zeros = [], [], []
            reset = True
            for rnd in self.rounds:
                zero, model = rnd[ZERO], rnd[label]
                samples.append(max(0, child_increment(model) - child_increment(zero)))
                peaks.append(int(model["hwm_bytes"]))
                zeros.append(int(zero["hwm_bytes"]))
                reset = reset and bool(model.get("reset")) and bool(zero.get("reset"))
            stats_of_last = self.rounds[-1][label].get("runtime_stats") or {} if self.rounds else {}
            out[label] = MemoryStats(samples, peaks, zeros, reset, dict(stats_of_last))
        return out

    def paired_ratios(self, numerator: str, denominator: str) -> list[float]:
        """Per-round ratios of two models' peaks (both measured in the same round)."""
        stats = self.stats()
        return [a / max(b, 1) for a, b in zip(stats[numerator].samples, stats[denominator].samples, strict=True)]

    @property
    def load_runtime_overridden(self) -> bool:
        return all(r[ZERO].get("load_runtime_overridden", True) for r in self.rounds)


def measure_peak_memory(artifacts: Mapping[str, Path], *, target: str, options: Mapping[str, Any],
                        feeds: Mapping[str, np.ndarray], threads: int, repeats: int = 3, runs: int = 3,
                        seed: int = 0) -> dict[str, MemoryStats]:
    """Peak memory per artifact (the public one-call form of :class:`MemoryMeter`)."""
    with MemoryMeter(artifacts, target=target, options=options, feeds=feeds, threads=threads, runs=runs,
                     seed=seed) as meter:
        meter.take(repeats)
        return meter.stats()
