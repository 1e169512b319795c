"""The accuracy-aware loop: quantize, measure on the target, return sensitive layers to float until the
plan's accuracy contracts hold or the evaluation budget is spent; and the budget a step may spend.

Verdicts use the core's own :func:`edgecraft.verify.contracts.judge_accuracy` with the registered metric
(its direction), so "the contract holds" here means exactly what the final report will say.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edgecraft.metrics import Metric
from edgecraft.plan import AccuracyContract, CompressionPlan
from edgecraft.verify.contracts import judge_accuracy


def accuracy_contracts(plan: CompressionPlan, target_label: str) -> list[AccuracyContract]:
    return [c for c in plan.contracts_for(target_label) if isinstance(c, AccuracyContract)]


def remaining_budget(contract: AccuracyContract, baseline: float, current: float, higher_is_better: bool) -> float:
    """The drop a step may still cause, in the contract's terms but measured from ``current``.

    ``contract.max_drop`` is measured from the baseline; what earlier steps already lost is
    subtracted. Relative contracts are re-expressed relative to ``current``.
    """
    spent = (baseline - current) if higher_is_better else (current - baseline)
    if contract.relative:
        allowed_abs = contract.max_drop * abs(baseline)
        return max(0.0, (allowed_abs - spent) / max(abs(current), 1e-12))
    return max(0.0, contract.max_drop - spent)


def contracts_hold(contracts: list[AccuracyContract], baseline: dict[str, float], metrics: dict[str, float],
                   metric: Callable[[str], Metric]) -> tuple[bool, dict[str, float]]:
    """Whether every contract holds, and the measured drop per contract metric (``metric``: the registry's)."""
    ok, drops = True, {}
    for contract in contracts:
        verdict = judge_accuracy(contract, metric(contract.metric), baseline, metrics)
        drops[contract.metric] = round(verdict.measured, 6)
        ok = ok and verdict.passed
    return ok, drops


@dataclass
class LoopResult:
    model: Any
    kept_float: list[str]
    history: list[dict[str, Any]] = field(default_factory=list)
    contract_met: bool = False
    evaluations: int = 0
    stopped: str = ""


def restore_until_met(*, quantize: Callable[[list[str]], Any], evaluate: Callable[[Any], dict[str, float]],
                      baseline: dict[str, float], contracts: list[AccuracyContract], metric: Callable[[str], Metric],
                      ranking: list[list[str]] | Callable[[], list[list[str]]],
                      group_size: int, budget: int, first: Any | None = None,
                      status: Callable[[str], None] = lambda _: None) -> LoopResult:
    """Evaluate the fully quantized model (``first`` or ``quantize([])``); while a contract fails and the
    budget allows, return the next ``group_size`` groups of ``ranking`` (most sensitive first; a group
    is a layer and the nodes that must stay float with it) to float and re-evaluate.

    ``ranking`` may be a callable: it is then computed only if the fully quantized model misses a
    contract (ranking costs one quantization per layer group)."""
    model = first if first is not None else quantize([])
    kept: list[str] = []
    metrics = evaluate(model)
    met, drops = contracts_hold(contracts, baseline, metrics, metric)
    result = LoopResult(model, kept, [{"step": 0, "kept_float": [], "metrics": metrics, "drop": drops,
                                       "contract_met": met}], met, 1)
    remaining = list(ranking) if not callable(ranking) else []
    if not met and callable(ranking):
        remaining = list(ranking())
    while not met and result.evaluations < budget and remaining:
        groups, remaining = remaining[:group_size], remaining[group_size:]
        group = [name for g in groups for name in g]
        kept = [*kept, *group]
        status(f"accuracy-aware: drop {drops} misses the contract; returning {group} to float")
        model = quantize(kept)
        metrics = evaluate(model)
        result.evaluations += 1
        met, drops = contracts_hold(contracts, baseline, metrics, metric)
        result.history.append({"step": len(result.history), "returned_to_float": group, "kept_float": list(kept),
                               "metrics": metrics, "drop": drops, "contract_met": met})
        result.model, result.kept_float = model, list(kept)
    result.contract_met = met
    result.stopped = ("contract met" if met else
                      "evaluation budget spent" if result.evaluations >= budget else "no layer left to restore")
    return result
