"""The gate under contention (issue 25, class 11): a steady neighbour is seen, and the verdict is then judged
on CPU time per call, not on a wall clock that the neighbour stretches one-sidedly.

Measured before the fix (``/tmp`` replay of 300 recorded rounds, 2 threads, one core kept busy, load 8-14):
the contention test looked only at the spread of the process's own CPU share; a steady neighbour lowers
every block's share alike, the test said "not contended", the wall clock was judged, and an identical model
came out at -14% [-26, -1] (the recorded misses: +47%, or inconclusive after the budget).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping

import numpy as np
import pytest
from edgecraft.backend import Session
from edgecraft.plan import GateSpec, LatencyContract, LatencySpec
from edgecraft.verify.gate import judge_latency_interval
from edgecraft.verify.measure import InterleavedTimer, machine_busy_seconds, timed_block
from edgecraft.verify.stats import contended


def test_a_steady_neighbour_is_contention_even_when_every_share_is_alike() -> None:
    steady = {"a": np.full(10, 1.2), "b": np.full(10, 1.2)}  # every block got the same (reduced) share
    assert not contended(steady)  # the share's spread alone cannot see it
    assert contended(steady, {"a": np.full(10, 0.9), "b": np.full(10, 1.0)})  # a core kept busy by others
    assert not contended(steady, {"a": np.full(10, 0.02), "b": np.full(10, 0.05)})  # a quiet machine
    assert not contended({"a": np.zeros(10)}, {"a": np.full(10, 1.0)})  # a remote device: says nothing


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="Linux only (/proc/stat)")
def test_other_processes_cpu_time_is_measured_on_our_cores() -> None:
    core = max(os.sched_getaffinity(0))
    spin = f"import os\nos.sched_setaffinity(0, {{{core}}})\nwhile True: pass"
    burner = subprocess.Popen([sys.executable, "-c", spin])
    try:
        time.sleep(0.3)
        busy0, cpu0, wall0 = machine_busy_seconds(), time.process_time(), time.perf_counter()
        time.sleep(1.0)
        busy1, cpu1, wall1 = machine_busy_seconds(), time.process_time(), time.perf_counter()
    finally:
        burner.kill()
        burner.wait()
    assert busy0 is not None and busy1 is not None
    others = ((busy1 - busy0) - (cpu1 - cpu0)) / (wall1 - wall0)
    assert others >= 0.5, others  # the burner's core, seen as another process's time


# ------------------------------------------------------------------------------------------ round 2
# Measured before this fix (300 recorded rounds, ResNet-18-sized, 2 threads, one core kept busy, load average 8.6,
# replayed through the gate's sequential check; benchmarks/gate_replay.py does both): judged on the block's mean
# CPU time with descheduled rounds left out, the unchanged model passed 36 of 60 replayed gates (24 inconclusive:
# a third to a half of the rounds discarded, wider intervals at stricter looks); keeping every round on CPU time:
# 60 of 60; and on the lower quintile of per-call CPU times too, 60 of 60 decided at the first look (the slower
# +10% model failed 60 of 60).


class BusySession(Session):
    """Burns ``ms`` of CPU per call on this process's own clock; every ``spike``-th call burns ``factor`` times as
    much (a caller spin-waiting for a descheduled intra-op thread)."""

    def __init__(self, ms: float, *, spike: int = 5, factor: float = 4.0) -> None:
        self.ms, self.spike, self.factor, self.calls = ms, spike, factor, 0

    @property
    def input_names(self) -> list[str]:
        return ["x"]

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        self.calls += 1
        burn = self.ms * (self.factor if self.calls % self.spike == 0 else 1.0) / 1e3
        end = time.process_time() + burn
        while time.process_time() < end:
            pass
        return [np.zeros(1)]


class ReportedSession(BusySession):
    """Reports its own per-call times (as a remote device's timer does): no per-call CPU time on this clock."""

    def timed_runs(self, feeds: Mapping[str, np.ndarray], repeats: int) -> list[float]:
        for _ in range(repeats):
            self.run(feeds)
        return [self.ms / 1e3] * repeats


def test_cpu_time_per_call_is_the_lower_quintile_of_the_calls_on_the_host_clock() -> None:
    sessions = {"a": BusySession(2.0), "b": ReportedSession(2.0)}
    timer = InterleavedTimer(sessions, {"x": np.zeros(1)}, LatencySpec(warmup=1, min_calls=10, max_calls=10,
                                                                          round_ms=1, rounds=3))
    timer.take(3)
    walls, cpus = timed_block(sessions["a"], {"x": np.zeros(1)}, 5)
    assert cpus is not None and len(cpus) == len(walls) == 5
    assert timed_block(sessions["b"], {"x": np.zeros(1)}, 5)[1] is None
    # two calls in ten burn 4x: the block's mean is 1.6x the work, the lower quintile is the work
    low = timer.cpu_ms_per_call("a")
    assert low.shape == (3,) and np.all(low < 2.6), low
    mean = timer.cpu_ms_per_call("b")  # not timed per call here: the block's mean, spikes included
    assert np.all(mean > 2.6), mean


def _replayed_timer(slower: float, seed: int, rounds: int = 20, statistic: str = "auto") -> InterleavedTimer:
    """Recorded-like blocks of a loaded 2-core runner: per-call CPU ~18 ms with one-sided spikes, a core kept busy
    by others throughout, and each model descheduled (a third of its CPU share) in a different 8 of the rounds:
    16 of 20 rounds disturbed on the wall clock."""
    rng = np.random.default_rng(seed)
    sessions = {"baseline": BusySession(1.0), "compressed": BusySession(1.0)}
    timer = InterleavedTimer(sessions, {"x": np.zeros(1)}, LatencySpec(warmup=1, min_calls=5, rounds=rounds,
                                                                          statistic=statistic))
    timer.per_round = 5
    hit = {"baseline": set(range(0, 8)), "compressed": set(range(8, 16))}
    for r in range(rounds):
        for label, work in (("baseline", 18.0), ("compressed", 18.0 * slower)):
            cpu = work * rng.lognormal(0.0, 0.02, 5) * np.where(rng.random(5) < 0.2, rng.uniform(1.5, 4.0, 5), 1.0)
            share = 0.33 if r in hit[label] else 1.0
            wall = cpu / share * rng.uniform(1.0, 1.6, 5)  # the busy core stretches the wall clock one-sidedly
            timer.record_block(label, [float(w) / 1e3 for w in wall], [float(c) / 1e3 for c in cpu],
                               cpu_seconds=float(cpu.sum()) / 1e3, wall_seconds=float(wall.sum()) / 1e3,
                               others_busy=1.0)
    return timer


@pytest.mark.parametrize("seed", range(5))
def test_cpu_time_verdicts_keep_the_descheduled_rounds(seed: int) -> None:
    # at most ~5% slower: speedup >= 0.95
    contract, gate = LatencyContract(min_speedup=0.95), GateSpec()
    timer = _replayed_timer(1.0, seed)
    assert timer.round_filter().too_disturbed  # the wall-clock filter would leave too few rounds to judge
    same = judge_latency_interval(contract, timer, gate, emulated=False)
    assert "CPU time per call" in same.detail and same.rounds_used == 20 and same.rounds_discarded == 0
    assert "disturbed on the wall clock, kept" in same.detail
    assert same.status == "pass", same.detail
    slower = judge_latency_interval(contract, _replayed_timer(1.10, seed), gate, emulated=False)
    assert slower.status == "fail", slower.detail


def test_wall_clock_verdicts_still_leave_disturbed_rounds_out() -> None:
    # latency.statistic: low asks for the wall clock: there the disturbed rounds stay out, and 16 of 20 decide nothing
    timer = _replayed_timer(1.0, 0, statistic="low")
    judged = judge_latency_interval(LatencyContract(min_speedup=0.95), timer, GateSpec(), emulated=False)
    assert "CPU time" not in judged.detail and judged.status == "inconclusive" and "too disturbed" in judged.detail
    assert judged.rounds_discarded == 16
