"""The accuracy-aware loop: quantize, measure on the target, return sensitive layers to float until the
plan's accuracy contracts hold or the evaluation budget is spent; and the budget a step may spend.

Verdicts use the core's own :func:`edgecraft.verify.contracts.judge_accuracy` with the registered metric
(its direction), so "the contract holds" here means exactly what the final report will say.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
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


def contract_gap(contracts: list[AccuracyContract], baseline: dict[str, float], metrics: dict[str, float],
                 metric: Callable[[str], Metric]) -> float:
    """How far the worst contract is from holding, in its own units (measured drop minus the allowed drop; <= 0:
    every contract holds)."""
    return max(judge_accuracy(c, metric(c.metric), baseline, metrics).measured - c.max_drop for c in contracts)


@dataclass
class LoopResult:
    model: Any
    kept_float: list[str]
    history: list[dict[str, Any]] = field(default_factory=list)
    #: Whether the contracts hold for the model returned: on the judging data when it was judged (the report's
    #: verdict), else on the selection data.
    contract_met: bool = False
    evaluations: int = 0
    stopped: str = ""
    #: The returned model on the judging (evaluation) data: metrics, drop, contract_met (None: not judged apart).
    judged: dict[str, Any] | None = None
    #: The ceiling check (every group the budget can reach in float), when it ran.
    ceiling: dict[str, Any] | None = None


#: Per-step gains are extrapolated only after this many steps (one step's gain alone is too noisy a bound).
MIN_STEPS_FOR_BOUND = 2


def restore_until_met(*, quantize: Callable[[list[str]], Any], evaluate: Callable[[Any], dict[str, float]],
                      baseline: dict[str, float], contracts: list[AccuracyContract], metric: Callable[[str], Metric],
                      ranking: list[list[str]] | Callable[[], list[list[str]]],
                      group_size: int, budget: int, first: Any | None = None,
                      status: Callable[[str], None] = lambda _: None,
                      judge: Callable[[Any], dict[str, float]] | None = None,
                      judge_baseline: dict[str, float] | None = None) -> LoopResult:
    """Evaluate the fully quantized model (``first`` or ``quantize([])``); while a contract fails and the
    budget allows, return the next ``group_size`` groups of ``ranking`` (most sensitive first; a group
    is a layer and the nodes that must stay float with it) to float and re-evaluate.

    ``evaluate``/``baseline`` are the *selection* data (the step's calibration data): layers are chosen there.
    ``judge``/``judge_baseline`` (the plan's evaluation data, what the report measures) judge the model chosen,
    once: a loop that chose on the data it reports would report its own selection bias (a recognizer tuned to
    0.990 on its evaluation set measured 0.985 on unseen data).

    The loop stops early when the contract is out of reach, and says why:

    * **ceiling**: after the ranking, the model with every group the budget can still reach in float is
      evaluated once; if even that misses, no subset can meet the contract;
    * **gains**: after :data:`MIN_STEPS_FOR_BOUND` steps, if the largest gain per step so far times the steps
      left cannot close the gap, the remaining steps cannot either (groups are ranked most sensitive first,
      so later gains are expected smaller). The ceiling model, when it met the contract, is taken instead.

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
    gaps = [contract_gap(contracts, baseline, metrics, metric)]
    ceiling: tuple[Any, list[str], dict[str, float]] | None = None
    stopped = ""
    steps_left = budget - result.evaluations - 1  # one evaluation goes to the ceiling
    if not met and remaining and steps_left >= 2:
        reach = [name for g in remaining[:steps_left * group_size] for name in g]
        status(f"accuracy-aware: ceiling check, {len(reach)} node(s) in float")
        top = quantize(reach)
        top_metrics = evaluate(top)
        result.evaluations += 1
        top_met, top_drops = contracts_hold(contracts, baseline, top_metrics, metric)
        result.ceiling = {"kept_float": len(reach), "metrics": top_metrics, "drop": top_drops,
                          "contract_met": top_met}
        if top_met:
            ceiling = (top, reach, top_metrics)
        else:
            stopped = (f"contract out of reach: with all {len(remaining[:steps_left * group_size])} layer group(s) "
                       f"the budget can reach in float the drop is still {top_drops} (gap "
                       f"{contract_gap(contracts, baseline, top_metrics, metric):.4g}); no subset can meet it")
    while not stopped and not met and result.evaluations < budget and remaining:
        groups, remaining = remaining[:group_size], remaining[group_size:]
        group = [name for g in groups for name in g]
        kept = [*kept, *group]
        status(f"accuracy-aware: drop {drops} misses the contract; returning {group} to float")
        model = quantize(kept)
        metrics = evaluate(model)
        result.evaluations += 1
        met, drops = contracts_hold(contracts, baseline, metrics, metric)
        gaps.append(contract_gap(contracts, baseline, metrics, metric))
        result.history.append({"step": len(result.history), "returned_to_float": group, "kept_float": list(kept),
                               "metrics": metrics, "drop": drops, "contract_met": met})
        result.model, result.kept_float = model, list(kept)
        left = min(budget - result.evaluations, -(-len(remaining) // group_size))
        gains = [a - b for a, b in pairwise(gaps)]
        if not met and left > 0 and len(gains) >= MIN_STEPS_FOR_BOUND and max(max(gains), 0.0) * left < gaps[-1]:
            stopped = (f"gains cannot close the gap: the largest gain per step so far is {max(gains):.4g}, "
                       f"{left} step(s) left, gap {gaps[-1]:.4g}")
            if ceiling is not None:
                result.model, result.kept_float, metrics = ceiling[0], list(ceiling[1]), ceiling[2]
                met = True
                stopped += "; took the ceiling model (every reachable group in float), which meets the contract"
    if not met and ceiling is not None:
        result.model, result.kept_float, met = ceiling[0], list(ceiling[1]), True
        stopped = stopped or "evaluation budget spent; took the ceiling model (every reachable group in float)"
    result.contract_met = met
    result.stopped = stopped or ("contract met" if met else "evaluation budget spent"
                                 if result.evaluations >= budget else "no layer left to restore")
    if judge is not None and judge_baseline is not None:
        final = judge(result.model)
        ok, final_drops = contracts_hold(contracts, judge_baseline, final, metric)
        result.judged = {"metrics": final, "drop": final_drops, "contract_met": ok}
        result.contract_met = ok
    return result
