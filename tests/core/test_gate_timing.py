"""How long the gate measures and what it measures on: calls per round from the model's latency, the
time budget enforced per round, sequential looks that stop early without inflating false decisions,
and disturbed rounds left out of verdicts. Fake sessions only (synthetic per-call times)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping

import numpy as np
import pytest
from edgecraft.backend import Session
from edgecraft.plan import GateSpec, LatencyContract, LatencySpec
from edgecraft.verify.gate import judge_latency_interval, settle
from edgecraft.verify.measure import InterleavedTimer
from edgecraft.verify.stats import disturbed_rounds, look_confidence
from pydantic import ValidationError


class SyntheticSession(Session):
    """Per-call seconds ``base * lognormal jitter``; blocks listed in ``slow_blocks`` (0 is the warm-up, 1 the
    first timed round) are ``slow_factor`` times slower. With ``sleep`` the calls also take that long for real."""

    def __init__(self, base_s: float, seed: int, *, jitter: float = 0.05, slow_blocks: frozenset[int] = frozenset(),
                 slow_factor: float = 3.0, sleep: bool = False) -> None:
        self.base, self.rng, self.jitter = base_s, np.random.default_rng(seed), jitter
        self.slow_blocks, self.slow_factor, self.sleep = slow_blocks, slow_factor, sleep
        self.blocks = 0
        self.calls: list[int] = []

    @property
    def input_names(self) -> list[str]:
        return ["x"]

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return [np.zeros(1)]

    def timed_runs(self, feeds: Mapping[str, np.ndarray], repeats: int) -> list[float]:
        times = self.base * self.rng.lognormal(0.0, self.jitter, size=repeats)
        if self.blocks in self.slow_blocks:
            times = times * self.slow_factor
        self.blocks += 1
        self.calls.append(repeats)
        if self.sleep:
            time.sleep(float(times.sum()))
        return [float(t) for t in times]


def timer_for(base_s: float, compressed_s: float, *, seed: int = 0, slow_blocks: frozenset[int] = frozenset(),
              slow_base: frozenset[int] = frozenset(), sleep: bool = False, **spec: object) -> InterleavedTimer:
    sessions = {"baseline": SyntheticSession(base_s, seed, slow_blocks=slow_base, sleep=sleep),
                "compressed": SyntheticSession(compressed_s, seed + 1, slow_blocks=slow_blocks, sleep=sleep)}
    return InterleavedTimer(sessions, {"x": np.zeros(1)}, LatencySpec(**{"warmup": 4, **spec}))


# ------------------------------------------------------------------------------------------ calls per round
@pytest.mark.parametrize("latency_s,round_ms,expected", [
    (2e-3, 50, 25),        # 50 ms / 2 ms
    (0.3e-3, 50, 167),     # a 0.3 ms model gets many calls: a block long enough to have a stable low quantile
    (25e-3, 50, 5),        # a 25 ms model: 2 calls would do, min_calls (5) keeps a low quantile meaningful
    (1e-6, 50, 1000),      # max_calls
])
def test_calls_per_round_follow_the_models_latency(latency_s: float, round_ms: float, expected: int) -> None:
    timer = timer_for(latency_s, latency_s / 2, round_ms=round_ms)  # the slower model sets the block
    timer.take(2)
    assert timer.per_round == pytest.approx(expected, rel=0.1)  # the warm-up's median has jitter
    assert timer.sessions["baseline"].calls[1:] == [timer.per_round] * 2  # type: ignore[attr-defined]
    assert timer.latency_estimate_ms == pytest.approx(latency_s * 1e3, rel=0.2)


def test_repeats_still_caps_calls_per_round() -> None:
    timer = timer_for(0.3e-3, 0.3e-3, repeats=40, rounds=4)
    timer.take(1)
    assert timer.per_round == 10  # 40 // 4, although round_ms alone would give 167
    with pytest.raises(ValidationError, match="min_calls"):
        LatencySpec(min_calls=50, max_calls=10)


# ------------------------------------------------------------------------------------------ time budget
def test_budget_is_overrun_by_at_most_one_round() -> None:
    # Identical models, contract bound exactly at their ratio: undecidable, so the gate measures until the
    # budget is spent. Calls really sleep: a round is 2 models x 4 calls x ~5 ms = ~40 ms.
    timer = timer_for(5e-3, 5e-3, sleep=True, round_ms=20, rounds=4, seed=3)
    timer.take(4)
    gate = GateSpec(time_budget_s=1.0, bootstrap_resamples=200)
    contract = LatencyContract(min_speedup=1.0)
    settled = settle([lambda: judge_latency_interval(contract, timer, gate, emulated=False)], timer, gate)
    one_round = max(timer._round_seconds)
    assert settled.extra_seconds <= gate.time_budget_s + one_round + 0.3  # + judging, generous on a busy CI
    if settled.verdicts[0].status == "inconclusive":  # (a false decision, at most 5% by design, stops earlier)
        assert settled.extra_rounds >= 6 and settled.looks >= 3
        assert settled.extra_seconds >= gate.time_budget_s - 3 * one_round - 0.3  # the budget was used


def test_zero_budget_measures_nothing_more() -> None:
    timer = timer_for(1e-3, 1e-3, rounds=4)
    timer.take(4)
    gate = GateSpec(time_budget_s=0)
    settled = settle([lambda: judge_latency_interval(LatencyContract(min_speedup=1.0), timer, gate,
                                                     emulated=False)], timer, gate)
    assert settled.extra_rounds == 0 and timer.n_rounds == 4


# ------------------------------------------------------------------------------------------ sequential looks
def test_look_confidence_spends_at_most_alpha() -> None:
    levels = [look_confidence(0.95, k) for k in range(1, 2000)]
    assert all(a < b for a, b in itertools.pairwise(levels))  # stricter at every look
    assert sum(1 - c for c in levels) <= 0.05 + 1e-12
    assert levels[0] == pytest.approx(1 - 0.05 * 6 / np.pi ** 2)
    with pytest.raises(ValueError):
        look_confidence(0.95, 0)


def test_a_clear_difference_stops_at_the_first_look() -> None:
    timer = timer_for(2e-3, 1e-3, rounds=6)  # 2x faster, 1.2x required
    timer.take(6)
    gate = GateSpec(time_budget_s=60)
    started = time.monotonic()
    settled = settle([lambda: judge_latency_interval(LatencyContract(min_speedup=1.2), timer, gate,
                                                     emulated=False)], timer, gate)
    assert settled.extra_rounds == 0 and settled.verdicts[0].status == "pass" and settled.verdicts[0].look == 1
    assert time.monotonic() - started < 30  # nowhere near the budget


def test_a_closer_difference_stops_as_soon_as_it_is_decided() -> None:
    timer = timer_for(1.3e-3, 1e-3, rounds=4, round_ms=5)
    timer.sessions["baseline"].jitter = timer.sessions["compressed"].jitter = 0.3  # type: ignore[attr-defined]
    timer.take(4)
    gate = GateSpec(time_budget_s=120)
    settled = settle([lambda: judge_latency_interval(LatencyContract(min_speedup=1.2), timer, gate,
                                                     emulated=False)], timer, gate)
    verdict = settled.verdicts[0]
    assert verdict.status == "pass" and settled.looks > 1 and verdict.look == settled.looks
    assert settled.extra_seconds < 60 and verdict.confidence == pytest.approx(look_confidence(0.95, settled.looks))


def test_repeated_looks_at_an_undecidable_verdict_rarely_decide() -> None:
    """The truth sits on the bound: any decision is a false one. Judged at a fixed 95% at every one of 8
    looks, false decisions pile up; with the per-look levels they stay near alpha."""
    decided = 0
    trials = 40
    for seed in range(trials):
        timer = timer_for(1e-3, 1e-3, seed=10 * seed, rounds=6, round_ms=3)
        timer.sessions["baseline"].jitter = timer.sessions["compressed"].jitter = 0.2  # type: ignore[attr-defined]
        timer.take(6)
        gate = GateSpec(bootstrap_resamples=400)
        for look in range(1, 9):
            timer.look = look
            if judge_latency_interval(LatencyContract(min_speedup=1.0), timer, gate, emulated=False,
                                      seed=seed).status != "inconclusive":
                decided += 1
                break
            timer.take(max(2, timer.n_rounds // 2))
    assert decided <= 0.125 * trials


# ------------------------------------------------------------------------------------------ disturbed rounds
def test_injected_slow_rounds_are_discarded_and_do_not_flip_the_verdict() -> None:
    # Same speed; in 6 of 20 rounds the compressed model's whole block is 3x slower (a neighbour took the
    # core). The interquartile mean alone would let one of them through (-> about 0.9x): a false failure.
    slow = frozenset({2, 5, 9, 12, 15, 18})
    timer = timer_for(1e-3, 1e-3, slow_blocks=slow, rounds=20, round_ms=10)
    timer.take(20)
    gate = GateSpec()
    verdict = judge_latency_interval(LatencyContract(min_speedup=0.95), timer, gate, emulated=False)
    assert verdict.rounds_discarded == 6 and verdict.discard_reasons == {"slow": 6} and verdict.rounds_used == 14
    assert verdict.status == "pass" and verdict.measured == pytest.approx(1.0, abs=0.02)
    assert "6 of 20 rounds discarded as disturbed (6 slow)" in verdict.detail
    assert timer.describe()["rounds_discarded"] == 6


def test_descheduled_rounds_are_found_from_cpu_time() -> None:
    rng = np.random.default_rng(0)
    blocks = {"a": rng.lognormal(0, 0.05, (12, 20)), "b": rng.lognormal(0, 0.05, (12, 20))}
    share = {"a": np.full(12, 1.0), "b": np.full(12, 0.98)}
    share["b"][[3, 8]] = 0.5  # half the block's wall time without the CPU
    flt = disturbed_rounds(blocks, share)
    assert flt.discarded == 2 and flt.reasons == {"descheduled": 2} and not flt.keep[[3, 8]].any()
    # a process that does not compute itself (a remote device, sleeping fakes) is never flagged by CPU time
    assert disturbed_rounds(blocks, {"a": np.zeros(12), "b": np.zeros(12)}).discarded == 0
    # a model that is simply slower, or slow drift that hits everyone, is not a disturbance
    drift = np.linspace(1.0, 1.2, 12)[:, None]
    assert disturbed_rounds({"a": blocks["a"] * drift, "b": 1.5 * blocks["b"] * drift}).discarded == 0


def test_mostly_disturbed_measurements_decide_nothing() -> None:
    # each model is hit in a different 8 of 20 rounds: 16 disturbed rounds, the "usual" itself is shaky
    timer = timer_for(1e-3, 1e-3, slow_blocks=frozenset(range(1, 9)), slow_base=frozenset(range(9, 17)), rounds=20,
                      round_ms=10)
    timer.take(20)
    verdict = judge_latency_interval(LatencyContract(min_speedup=0.5), timer, GateSpec(), emulated=False)
    assert verdict.status == "inconclusive" and "too disturbed" in verdict.detail


def test_cpu_time_is_used_only_for_a_contended_local_clock() -> None:
    from edgecraft.verify.stats import contended

    quiet = {"a": np.full(10, 0.98), "b": np.full(10, 1.0)}
    busy = {"a": np.array([1.0, 0.5, 0.55, 0.5, 0.6, 0.95, 0.5, 0.52, 0.5, 0.9]), "b": np.full(10, 1.0)}
    assert not contended(quiet) and contended(busy)
    assert not contended({"a": np.zeros(10)})  # the host does not compute: says nothing
    # synthetic times (a fake, a remote device's own timer) are not the host's clock: never judged on CPU time
    timer = timer_for(2e-3, 1e-3, rounds=4)
    timer.take(4)
    assert not timer.host_timed("baseline")
    verdict = judge_latency_interval(LatencyContract(min_speedup=1.5), timer, GateSpec(), emulated=False)
    assert verdict.status == "pass" and "CPU time" not in verdict.detail


def test_one_session_under_two_labels_is_timed_once_per_round() -> None:
    # A plan without steps: the baseline is the compressed artifact; timing it twice per round measured nothing new
    # (a third of a gate run's timing against a reference, issue 25's gate_cost time).
    same, reference = SyntheticSession(1e-3, 0), SyntheticSession(1e-3, 1)
    timer = InterleavedTimer({"baseline": same, "compressed": same, "reference": reference}, {"x": np.zeros(1)},
                             LatencySpec(warmup=4, rounds=6, round_ms=10))
    timer.take(6)
    assert len(same.calls) == len(reference.calls) == 1 + 6  # the warm-up, then one block per round
    assert np.array_equal(timer.rounds_ms("baseline"), timer.rounds_ms("compressed"))
    assert timer.rounds_ms("compressed").shape == timer.rounds_ms("reference").shape == (6, timer.per_round)
    verdict = judge_latency_interval(LatencyContract(min_speedup=0.99), timer, GateSpec(), emulated=False)
    assert verdict.status == "pass" and verdict.measured == pytest.approx(1.0)
