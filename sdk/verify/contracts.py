"""Judge contracts: each verdict carries the measured value, the bound, and by how much it missed."""

from __future__ import annotations

from typing import Literal

from edgecraft.metrics import Metric
from edgecraft.plan import AccuracyContract, LatencyContract, SizeContract
from pydantic import BaseModel, ConfigDict, Field


class Verdict(BaseModel):
    """The outcome of one contract on one target."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: str = Field(description="The contract's kind: accuracy, latency, size, memory, compute, or a plugin's kind.")
    passed: bool
    status: Literal["pass", "fail", "inconclusive"]
    measured: float
    bound: float
    unit: str
    detail: str
    emulated: bool = False
    # Added for release gating (v1 stays backward compatible: new fields only, all optional).
    origin: Literal["contract", "reference"] = Field(
        "contract", description="'contract': a contract of the plan; 'reference': a bound vs the reference report.")
    ci_low: float | None = Field(None, description="Lower end of the confidence interval of `measured`.")
    ci_high: float | None = Field(None, description="Upper end of the confidence interval of `measured`.")
    confidence: float | None = Field(None, description="Confidence level of [ci_low, ci_high].")
    samples: int | None = Field(None, description="Timed calls per model behind a latency verdict (child processes "
                                "per model behind a memory verdict).")
    note: str | None = Field(None, description="How an inconclusive verdict was counted, fallbacks used, ...")
    metric: str | None = Field(None, description="The metric an accuracy verdict is about.")
    percentile: str | None = Field(None, description="The percentile a latency verdict is about.")
    rounds_used: int | None = Field(None, description="Interleaved rounds a latency verdict was judged on.")
    rounds_discarded: int | None = Field(None, description="Rounds left out of a latency verdict as disturbed "
                                         "(the timed process descheduled, or a block far slower than usual).")
    discard_reasons: dict[str, int] | None = Field(None, description="Discarded rounds by reason: 'descheduled', "
                                                   "'slow'.")
    measured_as: str | None = Field(None, description="What a latency verdict's number is: wall-clock or CPU time, "
                                    "which per-round statistic, pooled or per round (the one figure shown for it).")
    look: int | None = Field(None, description="Which look of the sequential check decided a latency verdict "
                             "(its interval is at the stricter per-look level given in `confidence`).")


def _name(contract: AccuracyContract | LatencyContract | SizeContract) -> str:
    return contract.name or f"{contract.kind}: {contract.describe_bound()}"


def judge_accuracy(contract: AccuracyContract, metric: Metric, baseline: dict[str, float],
                   compressed: dict[str, float]) -> Verdict:
    base, comp = baseline[contract.metric], compressed[contract.metric]
    drop = (base - comp) if metric.higher_is_better else (comp - base)
    if contract.relative and base == 0:
        from edgecraft.errors import InputError

        raise InputError(f"contract {_name(contract)!r}: a relative drop is undefined when the baseline's "
                         f"{contract.metric} is 0 ({drop:g}/0)", hint="check the evaluation data and labels, or "
                         "bound the absolute drop (relative: false)")
    measured = drop / abs(base) if contract.relative else drop
    passed = measured <= contract.max_drop + 1e-12
    unit = "relative drop" if contract.relative else f"{contract.metric} drop"
    detail = (f"{contract.metric}: baseline {base:.4f}, compressed {comp:.4f}, drop {measured:.4f} "
              f"{'<=' if passed else '>'} {contract.max_drop:g} allowed")
    if not passed:
        detail += f" (short by {measured - contract.max_drop:.4f})"
    return Verdict(name=_name(contract), kind="accuracy", passed=passed, status="pass" if passed else "fail",
                   measured=measured, bound=contract.max_drop, unit=unit, detail=detail, metric=contract.metric)


def judge_size(contract: SizeContract, baseline_bytes: int, compressed_bytes: int) -> Verdict:
    if contract.max_bytes is not None:
        passed = compressed_bytes <= contract.max_bytes
        detail = f"{compressed_bytes} bytes {'<=' if passed else '>'} {contract.max_bytes} allowed"
        if not passed:
            detail += f" (over by {compressed_bytes - contract.max_bytes} bytes)"
        return Verdict(name=_name(contract), kind="size", passed=passed, status="pass" if passed else "fail",
                       measured=float(compressed_bytes), bound=float(contract.max_bytes), unit="bytes", detail=detail)
    assert contract.min_ratio is not None
    ratio = baseline_bytes / max(compressed_bytes, 1)
    passed = ratio >= contract.min_ratio
    detail = (f"baseline {baseline_bytes} / compressed {compressed_bytes} bytes = {ratio:.2f}x "
              f"{'>=' if passed else '<'} {contract.min_ratio:g}x required")
    if not passed:
        detail += f" (short by {contract.min_ratio - ratio:.2f}x)"
    return Verdict(name=_name(contract), kind="size", passed=passed, status="pass" if passed else "fail",
                   measured=ratio, bound=contract.min_ratio, unit="size ratio", detail=detail)
