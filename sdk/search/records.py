"""What a search keeps of each trial: its record (the facts of its report, JSON-safe, stored with it in the
study), the objective values the sampler is told, and how far each verdict is from its bound.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from edgecraft.assembly.artifacts import MANIFEST
from edgecraft.plan import CompressionPlan
from edgecraft.plan.search import SearchSpec
from edgecraft.registry import Registry
from edgecraft.verify.contracts import Verdict
from edgecraft.verify.judging import kind_of
from edgecraft.verify.report import TargetReport
from edgecraft.verify.stats import ratio_interval

#: A trial's end: its record, its state (``complete``, ``pruned``, ``failed``) and its objective values.
Outcome = tuple[dict[str, Any], str, list[float]]


class TrialStopped(Exception):
    """Raised from the torch-stage hook: the trial already misses an accuracy contract."""

    def __init__(self, verdict: Verdict, metrics: dict[str, float], baseline_size: int | None) -> None:
        super().__init__(verdict.detail)
        self.verdict = verdict
        self.metrics = metrics
        self.baseline_size = baseline_size



def accuracy_metric(plan: CompressionPlan, registry: Registry, label: str, spec: SearchSpec) -> str | None:
    """The metric the accuracy objective reads: ``accuracy.METRIC``, else the first contract's that reads a
    metric, else the plan's first evaluation metric."""
    objective = next((o for o in spec.objective if o.startswith("accuracy")), None)
    if objective and "." in objective:
        return objective.split(".", 1)[1]
    for contract in plan.contracts_for(label):
        metric = kind_of(registry, contract).metric(contract)
        if metric is not None:
            return metric
    return plan.evaluation.metrics[0] if plan.evaluation.dataset is not None and plan.evaluation.metrics else None


def latency_interval(report: TargetReport, pct: str, plan: CompressionPlan) -> tuple[float, float, float]:
    """Candidate/baseline latency ratio at ``pct`` (estimate, low, high), from this trial's interleaved rounds.

    Taken from the trial's own speedup verdict when the plan has one at that percentile (its interval
    already leaves out disturbed rounds), else bootstrapped from the recorded rounds the same way.
    """
    for v in report.contracts:
        if (v.origin == "contract" and v.percentile == pct and v.unit.startswith("speedup")  # latency verdicts only
                and v.ci_low and v.ci_high):
            return 1.0 / v.measured, 1.0 / v.ci_high, 1.0 / v.ci_low
    base, comp = report.baseline.latency_ms, report.compressed.latency_ms
    rounds = comp.rounds or 1
    if (base.rounds or 1) == rounds and len(base.samples) % rounds == 0 and len(comp.samples) % rounds == 0 \
            and len(comp.samples) >= rounds:
        ci = ratio_interval(np.asarray(comp.samples).reshape(rounds, -1), np.asarray(base.samples).reshape(rounds, -1),
                            pct, confidence=plan.gate.confidence, resamples=plan.gate.bootstrap_resamples,
                            seed=plan.latency.seed, statistic="low")
        return ci.estimate, ci.low, ci.high
    ratio = getattr(comp, pct) / getattr(base, pct)
    return ratio, ratio, ratio


def violation(v: Verdict) -> float:
    """How far a verdict is from its bound, relative to the bound: > 0 misses it, <= 0 meets it."""
    higher_better = v.unit.startswith("speedup") or "ratio" in v.unit
    scale = max(abs(v.bound), 1e-3)
    raw = (v.bound - v.measured) / scale if higher_better else (v.measured - v.bound) / scale
    return min(raw, 0.0) if v.passed else max(raw, 1e-6)


def record_from_report(report: TargetReport, plan: CompressionPlan, registry: Registry, spec: SearchSpec,
                       label: str) -> dict[str, Any]:
    """The JSON-safe facts of a finished trial (stored with it in the study)."""
    metric = accuracy_metric(plan, registry, label, spec)
    pct = next((o.split(".")[1] for o in spec.objective if o.startswith("latency.")), "p50")
    est, low, high = latency_interval(report, pct, plan)
    memory = report.compressed.memory
    compute = report.compressed.compute
    return {
        "state": "complete", "passed": report.passed, "status": report.status,
        "metric": metric, "accuracy": report.compressed.metrics.get(metric) if metric else None,
        "baseline_accuracy": report.baseline.metrics.get(metric) if metric else None,
        "metrics": report.compressed.metrics, "percentile": pct,
        "latency_ratio": est, "latency_ratio_ci": [low, high],
        "speedup": 1.0 / est if est > 0 else None,
        "latency_ms": getattr(report.compressed.latency_ms, pct),
        "baseline_latency_ms": getattr(report.baseline.latency_ms, pct),
        "size_bytes": report.compressed.size_bytes, "baseline_size_bytes": report.baseline.size_bytes,
        "size_ratio": report.ratios.get("size_ratio"),
        "memory_bytes": memory.peak_bytes if memory is not None and memory.measured else None,
        "memory_range": [memory.min_bytes, memory.max_bytes] if memory is not None and memory.measured else None,
        "macs": compute.macs if compute is not None else None,
        "verdicts": [{"name": v.name, "kind": v.kind, "status": v.status, "passed": v.passed, "measured": v.measured,
                      "bound": v.bound, "unit": v.unit, "detail": v.detail, "violation": violation(v)}
                     for v in report.contracts],
        "compiled_key": report.compiled_key, "artifact": report.artifact, "cached": report.compressed.cached,
        "baseline_cached": report.baseline.cached, "torch_stage_reused": _torch_stage_reused(report.artifact),
    }


def _torch_stage_reused(artifact: str | None) -> bool | None:
    """Whether the artifact's torch-stage steps came from an earlier trial's result (its manifest says so);
    None when the manifest is not readable here (an artifact built on a cluster node)."""
    path = Path(artifact) / MANIFEST if artifact else None
    if path is None or not path.is_file():
        return None
    steps = json.loads(path.read_text()).get("steps", [])
    return any(bool(d.get("reused_from_other_target")) for d in steps)


def objective_values(record: dict[str, Any], spec: SearchSpec) -> list[float]:
    out = []
    for name in spec.objective:
        if name.startswith("accuracy"):
            out.append(float(record["accuracy"]) if record.get("accuracy") is not None else 0.0)
        elif name.startswith("latency."):
            out.append(float(record["latency_ratio"]))
        elif name == "size":
            out.append(float(record["size_bytes"]))
        elif name == "memory":
            out.append(float(record["memory_bytes"]) if record.get("memory_bytes") is not None else 0.0)
        elif name == "macs":
            out.append(float(record["macs"]) if record.get("macs") is not None else 0.0)
    return out


def failed_outcome(base: dict[str, Any], reason: str, exit_code: int | None = None,
                   **extra: Any) -> Outcome:
    """A failed trial's (record, state, objective values): one recipe that cannot be built or run is a
    failed trial, not a failed search; the report keeps its exit code."""
    record = {**base, "state": "failed", "reason": reason.replace("\n", " "), "verdicts": [], **extra}
    if exit_code is not None:
        record["exit_code"] = exit_code
    return record, "failed", []


def stopped_values(plan: CompressionPlan, registry: Registry, spec: SearchSpec, label: str,
                   stop: TrialStopped) -> list[float]:
    """Objective values for a trial stopped after its torch stage: what is known, and no gain for the rest.

    Why not simply mark it pruned: Optuna's GP sampler fits only completed trials, so it never learns that
    a region misses the accuracy contract and proposes it again and again (12 of 20 trials in one digits
    search went to the same stopped recipe). Told as complete, with the accuracy measured after the torch
    stage (the int8 stage after it can only lose more) and the baseline's latency and size (nothing
    gained is assumed), plus the accuracy constraint's measured violation, the trial is infeasible to
    every constrained sampler, and its region is learned. Empty when a value cannot be stated (the
    sampler is then told the trial was pruned).
    """
    metric = accuracy_metric(plan, registry, label, spec)
    out: list[float] = []
    for name in spec.objective:
        if name.startswith("accuracy") and metric in stop.metrics:
            out.append(float(stop.metrics[metric]))
        elif name.startswith("latency."):
            out.append(1.0)
        elif name == "size" and stop.baseline_size is not None:
            out.append(float(stop.baseline_size))
        else:
            return []
    return out

