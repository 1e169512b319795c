"""The noise-aware verdict machinery on synthetic timings: intervals, decisions, adaptive rounds, policies."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest
from edgecraft.backend import Session
from edgecraft.errors import PlanValidationError
from edgecraft.plan import GateSpec, LatencyContract, LatencySpec
from edgecraft.verify.gate import EXIT_INCONCLUSIVE, exit_code_for, judge_latency_interval, overall_status, settle
from edgecraft.verify.measure import InterleavedTimer
from edgecraft.verify.stats import decide_at_least, decide_at_most, percentile_interval, ratio_interval


def drifting_rounds(rng: np.random.Generator, rounds: int, calls: int, base_ms: float, drift: np.ndarray,
                    jitter: float = 0.05) -> np.ndarray:
    """Per-call times: a shared per-round drift factor times per-call lognormal jitter."""
    return base_ms * drift[:, None] * rng.lognormal(0.0, jitter, size=(rounds, calls))


def test_paired_ratio_cancels_shared_drift() -> None:
    rng = np.random.default_rng(1)
    drift = rng.choice([1.0, 1.6, 2.5], size=30)  # the machine's speed jumps between rounds
    ref = drifting_rounds(rng, 30, 10, 1.0, drift)
    same = drifting_rounds(rng, 30, 10, 1.0, drift)
    slower = drifting_rounds(rng, 30, 10, 1.1, drift)
    ci_same = ratio_interval(same, ref, "p50")
    ci_slow = ratio_interval(slower, ref, "p50")
    assert ci_same.low < 1.0 < ci_same.high and ci_same.high < 1.05
    assert ci_slow.low > 1.05 and ci_slow.low < 1.1 < ci_slow.high
    assert decide_at_most(ci_same.scaled(100, -100), 5.0) == "pass"
    assert decide_at_most(ci_slow.scaled(100, -100), 5.0) == "fail"
    # pooled percentiles do not cancel the drift: the single-model interval is much wider
    pooled = percentile_interval(slower, "p50")
    assert (pooled.high - pooled.low) / pooled.estimate > 5 * (ci_slow.high - ci_slow.low) / ci_slow.estimate


def test_tail_percentile_ratio_and_decisions() -> None:
    rng = np.random.default_rng(2)
    drift = np.ones(12)
    a, b = drifting_rounds(rng, 12, 20, 2.0, drift), drifting_rounds(rng, 12, 20, 1.0, drift)
    ci = ratio_interval(a, b, "p95")
    assert ci.low < 2.0 < ci.high or abs(ci.estimate - 2.0) < 0.2
    assert decide_at_least(ci, 1.5) == "pass" and decide_at_least(ci, 3.0) == "fail"
    assert decide_at_least(ci, ci.estimate) == "inconclusive"
    with pytest.raises(ValueError, match="paired rounds differ"):
        ratio_interval(a[:5], b, "p50")


class FakeSession(Session):
    """Returns synthetic per-call seconds (no real sleeping): base * round drift * jitter."""

    def __init__(self, base_s: float, rng: np.random.Generator, drift: list[float]) -> None:
        self.base, self.rng, self.drift = base_s, rng, drift

    @property
    def input_names(self) -> list[str]:
        return ["x"]

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return [np.zeros(1)]

    def timed_runs(self, feeds: Mapping[str, np.ndarray], repeats: int) -> list[float]:
        factor = self.drift[0]
        return list(self.base * factor * self.rng.lognormal(0.0, 0.3, size=repeats))


def make_timer(ratio: float, seed: int = 0, rounds: int = 4) -> InterleavedTimer:
    rng = np.random.default_rng(seed)
    drift = [1.0]
    sessions = {"baseline": FakeSession(1e-3, rng, drift), "compressed": FakeSession(1e-3 / ratio, rng, drift)}
    return InterleavedTimer(sessions, {"x": np.zeros(1)}, LatencySpec(warmup=0, repeats=rounds * 5, rounds=rounds))


def test_inconclusive_takes_more_rounds_until_decided() -> None:
    timer = make_timer(ratio=1.3)
    timer.take(4)
    contract = LatencyContract(min_speedup=1.2)
    gate = GateSpec(time_budget_s=30)
    first = judge_latency_interval(contract, timer, gate, emulated=False)
    assert first.status == "inconclusive"  # 4 rounds of 5 noisy calls cannot tell 1.3x from 1.2x
    settled = settle([lambda: judge_latency_interval(contract, timer, gate, emulated=False)], timer, gate)
    assert settled.extra_rounds > 0 and timer.n_rounds == 4 + settled.extra_rounds
    verdict = settled.verdicts[0]
    assert verdict.status == "pass" and verdict.passed and verdict.ci_low >= 1.2
    assert verdict.samples == timer.n_rounds * 5 and verdict.note is None


@pytest.mark.parametrize("policy,passed,code", [("fail", False, 1), ("pass", True, 0), ("error", False, 4)])
def test_budget_spent_applies_the_inconclusive_policy(policy: str, passed: bool, code: int) -> None:
    timer = make_timer(ratio=1.2)
    timer.take(4)
    contract = LatencyContract(min_speedup=1.2)  # the truth sits on the bound: never decidable
    gate = GateSpec(time_budget_s=0, inconclusive=policy)
    settled = settle([lambda: judge_latency_interval(contract, timer, gate, emulated=False)], timer, gate)
    verdict = settled.verdicts[0]
    assert settled.extra_rounds == 0 and verdict.status == "inconclusive" and verdict.passed is passed
    assert f"gate.inconclusive: {policy}" in verdict.note
    assert overall_status(settled.verdicts) == "inconclusive"
    assert exit_code_for(settled.verdicts, policy) == code
    assert code != 4 or code == EXIT_INCONCLUSIVE


def test_a_real_failure_wins_over_inconclusive_error() -> None:
    timer = make_timer(ratio=1.2)
    timer.take(4)
    gate = GateSpec(time_budget_s=0, inconclusive="error")
    undecided = judge_latency_interval(LatencyContract(min_speedup=1.2), timer, gate, emulated=False)
    failed = judge_latency_interval(LatencyContract(min_speedup=5.0), timer, gate, emulated=False)
    assert failed.status == "fail" and "short by" in failed.detail
    assert exit_code_for([undecided.model_copy(update={"passed": False}), failed], "error") == 1


def test_gate_section_is_strict(tmp_path) -> None:
    from edgecraft.plan.loading import load_plan
    from edgecraft.registry import build_registry

    plan = tmp_path / "plan.yaml"
    plan.write_text("model: {kind: onnx, path: m.onnx}\ntargets: [ort-cpu]\n"
                    "gate: {inconclusive: maybe, reference: {max_latency_regresion_pct: 5}}\n")
    with pytest.raises(PlanValidationError) as info:
        load_plan(plan, build_registry())
    text = str(info.value)
    assert "gate.inconclusive" in text and "gate.reference.max_latency_regresion_pct" in text
