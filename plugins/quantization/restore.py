"""The two ways a quantization step returns layers to float until the plan's accuracy contract holds.

* The strategy's own loop (:func:`restore_by_loop`, over :func:`.accuracy.restore_until_met`): the
  backend's job ranks groups of layers on its runtime and rebuilds with more of them in float; every
  candidate is evaluated on the target, as the report will evaluate it.
* A backend's own accuracy-aware search (:func:`restore_by_backend`, when ``job.accuracy_control`` names
  one): the strategy hands it the drop left for this step and the evaluation data, then confirms the
  result on the target.

Either way the strategy decides what is aimed at (the contracts, the budget); the backend only how.
"""

from __future__ import annotations

from typing import Any

from edgecraft.context import RunContext
from edgecraft.models import ModelHandle
from edgecraft.plan import AccuracyContract
from edgecraft.plugins.quantization.accuracy import (
    accuracy_contracts,
    contracts_hold,
    remaining_budget,
    restore_until_met,
)
from edgecraft.plugins.quantization.params import AccuracyAwareParams
from edgecraft.quantize import AccuracyGoal, Feeds, Int8Job


def selection_dataset(ctx: RunContext, calibration: str | None,
                      contracts: list[AccuracyContract]) -> tuple[str | None, str]:
    """The dataset layers are selected on (the step's calibration data), or None (the evaluation data), and why.

    Selecting on the data the report judges would report the selection's own bias (issue 26): the calibration
    data is used unless there is none, it is the evaluation dataset itself, or a contract's metric needs labels
    it does not have.
    """
    evaluation = ctx.plan.evaluation.dataset
    if calibration is None:
        return None, ("layers selected on the evaluation data: the step has no calibration_dataset (set one to "
                      "keep selection and judgement apart)")
    if calibration == evaluation:
        return None, (f"layers selected on the evaluation data: calibration_dataset is the evaluation dataset "
                      f"{evaluation!r} (use another to keep selection and judgement apart)")
    needs = [c.metric for c in contracts if ctx.metric(c.metric).needs_labels]
    if needs and ctx.feeds(calibration).labels is None:
        return None, (f"layers selected on the evaluation data: metric(s) {needs} need labels and calibration "
                      f"dataset {calibration!r} has none")
    return calibration, (f"layers selected on calibration dataset {calibration!r}, the result judged on "
                         f"evaluation dataset {evaluation!r}")


def restore_by_loop(job: Int8Job, ctx: RunContext, first: ModelHandle, ranking_feeds: list[Feeds],
                    settings: AccuracyAwareParams, details: dict[str, Any]) -> ModelHandle:
    """Evaluate ``first`` (fully quantized); while a contract fails, rebuild with the next most sensitive groups
    in float. The ranking costs the backend one quantization per group: it is computed only on a miss. Layers
    are selected on the calibration data and the result judged on the evaluation data (:func:`selection_dataset`).
    """
    assert ctx.baseline_metrics is not None
    contracts = accuracy_contracts(ctx.plan, ctx.target.label)
    select, why = selection_dataset(ctx, job.request.calibration_dataset, contracts)
    baseline = ctx.baseline_metrics(select) if select is not None else ctx.baseline_metrics()
    ranking: list[tuple[list[str], float]] = []

    def rank_groups() -> list[list[str]]:
        ranking.extend(job.rank(ranking_feeds))
        return [group for group, _ in ranking]

    def evaluate(model: ModelHandle) -> dict[str, float]:
        return ctx.evaluate(model, select) if select is not None else ctx.evaluate(model)

    apart = select is not None
    loop = restore_until_met(quantize=job.build, evaluate=evaluate, baseline=baseline, contracts=contracts,
                             metric=ctx.metric, ranking=rank_groups, group_size=settings.group_size,
                             budget=settings.max_evaluations, first=first, status=ctx.progress.status,
                             judge=ctx.evaluate if apart else None,
                             judge_baseline=ctx.baseline_metrics() if apart else None)
    details["accuracy_aware"] = {
        "selection": why, "selected_on": select or ctx.plan.evaluation.dataset,
        "baseline": baseline, "contract_met": loop.contract_met, "evaluations": loop.evaluations,
        "budget": settings.max_evaluations, "stopped": loop.stopped, "steps": loop.history,
        **({"judged_on_evaluation": loop.judged} if loop.judged is not None else {}),
        **({"ceiling": loop.ceiling} if loop.ceiling is not None else {}),
        "sensitivity_top": [{"layer": g[0], "group": g, "output_error_reduction": round(s, 5)}
                            for g, s in ranking[:10]]}
    details["kept_float"] = sorted({*(job.kept_by_params or []), *loop.kept_float})
    return loop.model


def restore_by_backend(job: Int8Job, ctx: RunContext, model: ModelHandle, settings: AccuracyAwareParams,
                       details: dict[str, Any]) -> ModelHandle:
    """Hand the backend's own search the tightest contract's metric and the drop left for this step."""
    assert ctx.baseline_metrics is not None and ctx.plan.evaluation.dataset is not None
    baseline = ctx.baseline_metrics()
    contracts = accuracy_contracts(ctx.plan, ctx.target.label)
    tight = min(contracts, key=lambda c: c.max_drop)
    metric = ctx.metric(tight.metric)
    select, why = selection_dataset(ctx, job.request.calibration_dataset, contracts)
    data = ctx.feeds(select or ctx.plan.evaluation.dataset)
    items = [data.feeds(slice(i, i + 1)) for i in range(len(data))]
    output_index = ctx.io.output_index(ctx.plan.evaluation.output)
    # A backend's search bounds the drop against *its input* (the float model as it stands after earlier
    # steps), while the contract bounds the drop against the plan's baseline. Earlier steps (pruning,
    # factorization) may already have spent part of the budget: the search gets only what is left.
    float_now = ctx.evaluate(model)
    budget = remaining_budget(tight, baseline[tight.metric], float_now[tight.metric], metric.higher_is_better)
    details["accuracy_budget"] = {"contract_max_drop": tight.max_drop, "float_input": float_now[tight.metric],
                                  "baseline": baseline[tight.metric], "left_for_quantization": budget}
    outcome = job.control_accuracy(AccuracyGoal(
        metric=metric, max_drop=budget, relative=tight.relative, items=items, labels=data.labels,
        output_index=output_index, max_iterations=max(1, settings.max_evaluations - 1),
        ranking_samples=settings.ranking_samples, mask_input=ctx.plan.evaluation.mask_input))
    # The search validated on its own terms; confirm on the target exactly as configured (and as the report
    # will measure).
    final = ctx.evaluate(outcome.model)
    met, drops = contracts_hold(contracts, baseline, final, ctx.metric)
    kept = list(job.kept_by_params or [])
    if outcome.fallback is not None:
        details["accuracy_aware"] = {"baseline": baseline, "contract_met": met, "final_metrics": final,
                                     "drop": drops, "evaluations": outcome.evaluations, "fallback": outcome.fallback}
        details["kept_float"] = kept
        return outcome.model
    details["accuracy_aware"] = {"selection": why, "baseline": baseline, "contract_met": met, "final_metrics": final,
                                 "drop": drops, "evaluations": outcome.evaluations, "budget": settings.max_evaluations,
                                 "steps": outcome.history, **outcome.details}
    details["kept_float"] = sorted({*kept, *outcome.kept_float})
    return outcome.model
