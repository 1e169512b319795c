"""Issue 26 item 6: the accuracy-aware loop selects on one data set and is judged on another, and stops when the
contract is out of reach (with the reason). Pure logic: models are lists of float layers, metrics are scripted."""

from __future__ import annotations

from typing import Any

import pytest
from edgecraft.metrics import Metric
from edgecraft.plan import AccuracyContract
from edgecraft.plugins.quantization.accuracy import restore_until_met

COSINE = Metric("cosine", lambda o, lab, ref: 0.0, "test", needs_reference=True)
CONTRACT = AccuracyContract(kind="accuracy", metric="cosine", max_drop=0.01)
BASE = {"cosine": 1.0}
GROUPS = [[f"layer{i}"] for i in range(10)]


class Scripted:
    """quantize(kept) -> the kept list; evaluate(model) -> cosine from ``score(number of groups kept float)``."""

    def __init__(self, score: Any) -> None:
        self.score = score
        self.evaluated: list[int] = []
        self.quantized = 0

    def quantize(self, kept: list[str]) -> list[str]:
        self.quantized += 1
        return list(kept)

    def evaluate(self, model: list[str]) -> dict[str, float]:
        self.evaluated.append(len(model))
        return {"cosine": self.score(len(model))}


def _run(s: Scripted, budget: int = 10, **kw: Any) -> Any:
    return restore_until_met(quantize=s.quantize, evaluate=s.evaluate, baseline=BASE, contracts=[CONTRACT],
                             metric=lambda _: COSINE, ranking=lambda: list(GROUPS), group_size=1, budget=budget, **kw)


def test_the_contract_is_met_by_restoring_the_most_sensitive_layers() -> None:
    s = Scripted(lambda kept: 0.95 + 0.02 * kept)  # 0.99 (drop 0.01) reached with 2 layers in float
    loop = _run(s)
    assert loop.contract_met and loop.kept_float == ["layer0", "layer1"] and loop.stopped == "contract met"
    assert loop.ceiling is not None and loop.ceiling["contract_met"]  # the budget could reach it: checked once


def test_stops_at_once_when_even_every_reachable_layer_in_float_misses() -> None:
    """The float model itself misses (an earlier step spent the budget): no subset of layers can help."""
    s = Scripted(lambda kept: 0.97 + 0.001 * kept)
    loop = _run(s)
    assert not loop.contract_met and loop.stopped.startswith("contract out of reach")
    assert loop.evaluations == 2 and s.evaluated == [0, 8]  # fully quantized, then the ceiling: the 8 groups the
    # budget could still reach (10 evaluations - the first - the ceiling's own)


def test_stops_when_the_gains_so_far_cannot_close_the_gap() -> None:
    """The detector case: each layer returned to float gains 0.001 while 0.02 is missing; the ceiling meets it
    (every layer float), so the loop takes the ceiling model instead of spending the budget."""
    s = Scripted(lambda kept: 1.0 if kept >= 8 else 0.97 + 0.001 * kept)
    loop = _run(s)
    assert "gains cannot close the gap" in loop.stopped and "took the ceiling model" in loop.stopped
    assert loop.contract_met and len(loop.kept_float) == 8
    assert loop.evaluations == 4  # fully quantized, ceiling, two linear steps to measure the gains


@pytest.mark.parametrize("budget", [1, 2, 3])
def test_a_budget_too_small_for_a_ceiling_is_spent_linearly(budget: int) -> None:
    s = Scripted(lambda kept: 0.9 + 0.001 * kept)
    loop = _run(s, budget=budget)
    assert loop.ceiling is None and loop.stopped == "evaluation budget spent" and loop.evaluations == budget
    assert s.evaluated == list(range(budget))


@pytest.mark.parametrize(("judged", "met"), [(0.995, True), (0.985, False)])
def test_selected_on_one_set_judged_on_the_other(judged: float, met: bool) -> None:
    """Selection says met (0.99 on calibration data); the verdict is the evaluation data's."""
    s = Scripted(lambda kept: 0.95 + 0.04 * kept)
    judge_calls: list[Any] = []

    def judge(model: Any) -> dict[str, float]:
        judge_calls.append(model)
        return {"cosine": judged}

    loop = _run(s, judge=judge, judge_baseline=BASE)
    assert judge_calls == [["layer0"]]  # once, on the model selection chose
    assert loop.judged is not None and loop.judged["metrics"] == {"cosine": judged}
    assert loop.contract_met is met and loop.judged["contract_met"] is met
    assert all(h["metrics"]["cosine"] != judged for h in loop.history)  # the history is the selection data's


class _Ctx:
    """What :func:`selection_dataset` reads from a run context."""

    def __init__(self, labeled: bool) -> None:
        from types import SimpleNamespace

        import numpy as np

        self.plan = SimpleNamespace(evaluation=SimpleNamespace(dataset="test"))
        self._labels = np.zeros(3) if labeled else None

    def metric(self, name: str) -> Metric:
        return Metric(name, lambda o, lab, ref: 0.0, "t", needs_labels=name == "top1")

    def feeds(self, name: str) -> Any:
        from types import SimpleNamespace

        return SimpleNamespace(labels=self._labels)


@pytest.mark.parametrize(("calibration", "labeled", "metric", "chosen", "why"), [
    ("calib", False, "cosine", "calib", "judged on evaluation dataset 'test'"),
    ("calib", True, "top1", "calib", "judged on evaluation dataset 'test'"),
    ("calib", False, "top1", None, "need labels"),
    (None, True, "top1", None, "no calibration_dataset"),
    ("test", True, "top1", None, "is the evaluation dataset"),
])
def test_selection_data_is_the_calibration_set_unless_it_cannot_be(calibration: str | None, labeled: bool,
                                                                   metric: str, chosen: str | None, why: str) -> None:
    from edgecraft.plugins.quantization.restore import selection_dataset

    contract = AccuracyContract(kind="accuracy", metric=metric, max_drop=0.01)
    ctx: Any = _Ctx(labeled)
    got, reason = selection_dataset(ctx, calibration, [contract])
    assert got == chosen and why in reason
