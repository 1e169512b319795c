"""Memory and compute on the verdict: measure peak memory and count MACs for one target, and judge them.

The runner calls :func:`measure_resources` once per target, after latency timing is done and the
target's sessions are closed (memory children must not share the machine with timing, and a session
held open in the parent is no part of a child's memory). Compute is counted always (cheap); memory only
when the plan asks (``measure.memory``), a memory contract needs it, or a reference bound does.

Memory verdicts are judged on the range of the repeated child processes (see
:mod:`edgecraft.verify.memory`): ``pass`` when the whole range meets the bound, ``fail`` when the whole
range misses it, otherwise ``inconclusive``; an inconclusive verdict gets one more set of repeats, then
is counted as ``gate.inconclusive`` says. Compute verdicts are exact (a count, not a measurement).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from edgecraft.errors import InputError
from edgecraft.plan import CompressionPlan, ComputeContract, GateSpec, MemoryContract
from edgecraft.progress import NullProgress, Progress
from edgecraft.verify.compute_memo import artifact_compute
from edgecraft.verify.contracts import Verdict
from edgecraft.verify.judging import Measured, measures_memory, of_measure
from edgecraft.verify.memory import MemoryMeter, MemoryProbeError, MemoryStats, range_confidence
from edgecraft.verify.report import ComputeReport, MemoryReport, TargetReport

if TYPE_CHECKING:
    from edgecraft.registry import Registry

BASELINE, COMPRESSED, REFERENCE = "baseline", "compressed", "reference"
MIB = 1024 * 1024


def fmt_bytes(n: float) -> str:
    """Bytes in MiB (how board RAM is sold: "64 MB" boards have 64 MiB), KiB below one MiB."""
    return f"{n / MIB:.2f} MiB" if abs(n) >= MIB else f"{n / 1024:.1f} KiB"


def fmt_macs(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {unit}MACs"
    return f"{n:.0f} MACs"


@dataclass
class ResourceResult:
    """What :func:`measure_resources` found for one target."""

    memory: dict[str, MemoryReport] = field(default_factory=dict)
    compute: dict[str, ComputeReport | None] = field(default_factory=dict)
    verdicts: list[Verdict] = field(default_factory=list)

    def attach(self, report: TargetReport) -> None:
        """Put the numbers into the target's report (measurements, ratios, reference)."""
        for label, side in ((BASELINE, report.baseline), (COMPRESSED, report.compressed)):
            side.memory = self.memory.get(label)
            side.compute = self.compute.get(label)
        base_m, comp_m = self.memory.get(BASELINE), self.memory.get(COMPRESSED)
        if base_m and comp_m and base_m.peak_bytes and comp_m.peak_bytes:
            report.ratios["memory_ratio"] = base_m.peak_bytes / max(comp_m.peak_bytes, 1)
        base_c, comp_c = self.compute.get(BASELINE), self.compute.get(COMPRESSED)
        if base_c and comp_c and comp_c.macs:
            report.ratios["macs_ratio"] = base_c.macs / comp_c.macs
        if report.reference is not None:
            ref_m, ref_c = self.memory.get(REFERENCE), self.compute.get(REFERENCE)
            if ref_m is not None and ref_m.peak_bytes is not None:
                report.reference.memory_bytes = ref_m.peak_bytes
            if ref_c is not None:
                report.reference.macs = ref_c.macs


# ------------------------------------------------------------------------------------------ judging
def _decide_at_most(low: float, high: float, bound: float) -> str:
    return "pass" if high <= bound else "fail" if low > bound else "inconclusive"


def _decide_at_least(low: float, high: float, bound: float) -> str:
    return "pass" if low >= bound else "fail" if high < bound else "inconclusive"


def _range_text(low: float, high: float, n: int, fmt: Any) -> str:
    conf = range_confidence(n)
    if conf is None:
        return "one repeat: no interval"
    return f"range over {n} repeats [{fmt(low)}, {fmt(high)}], covers the median with {100 * conf:.0f}% confidence"


def judge_memory(contract: MemoryContract, baseline: MemoryStats, compressed: MemoryStats) -> Verdict:
    """A memory contract on the repeats' range (``[min, max]``; the estimate is the median)."""
    n = len(compressed.samples)
    common: dict[str, Any] = {"name": contract.name or f"memory: {contract.describe_bound()}", "kind": "memory",
                              "samples": n, "confidence": range_confidence(n)}
    if contract.max_bytes is not None:
        values = np.asarray(compressed.samples, dtype=float)
        est, low, high = float(np.median(values)), float(values.min()), float(values.max())
        bound = float(contract.max_bytes)
        status = _decide_at_most(low, high, bound)
        detail = (f"peak memory {fmt_bytes(est)} ({_range_text(low, high, n, fmt_bytes)}) vs {fmt_bytes(bound)} "
                  "ceiling: " + {"pass": "within", "fail": f"over by {fmt_bytes(est - bound)} "
                                 f"({est - bound:.0f} bytes, {100 * (est / bound - 1):.1f}%)",
                                 "inconclusive": "the range straddles the ceiling"}[status])
        unit = "bytes (peak memory)"
    else:
        assert contract.min_ratio is not None
        ratios = np.asarray([b / max(c, 1) for b, c in zip(baseline.samples, compressed.samples, strict=True)])
        est, low, high = float(np.median(ratios)), float(ratios.min()), float(ratios.max())
        bound = contract.min_ratio
        status = _decide_at_least(low, high, bound)
        detail = (f"peak memory baseline {fmt_bytes(baseline.median)} / compressed {fmt_bytes(compressed.median)} "
                  f"= {est:.2f}x ({_range_text(low, high, n, lambda v: f'{v:.2f}x')}) vs {bound:g}x required: "
                  + {"pass": "met", "fail": f"short by {bound - est:.2f}x",
                     "inconclusive": "the range straddles the bound"}[status])
        unit = "peak memory ratio"
    return Verdict(**common, passed=status == "pass", status=status, measured=est, bound=bound, unit=unit,
                   detail=detail, ci_low=low if n >= 2 else None, ci_high=high if n >= 2 else None)


def judge_compute(contract: ComputeContract, baseline: ComputeReport, compressed: ComputeReport) -> Verdict:
    """A compute contract: a count, so no interval."""
    name = contract.name or f"compute: {contract.describe_bound()}"
    if contract.max_macs is not None:
        passed = compressed.macs <= contract.max_macs
        int8 = f"{100 * compressed.int8_fraction:.0f}% int8"
        detail = (f"{fmt_macs(compressed.macs)} ({compressed.macs} MACs, batch 1, {int8}) "
                  f"{'<=' if passed else '>'} {contract.max_macs} allowed")
        if not passed:
            over = compressed.macs - contract.max_macs
            detail += f" (over by {over} MACs, {100 * over / contract.max_macs:.1f}%)"
        return Verdict(name=name, kind="compute", passed=passed, status="pass" if passed else "fail",
                       measured=float(compressed.macs), bound=float(contract.max_macs), unit="MACs", detail=detail)
    assert contract.min_ratio is not None
    ratio = baseline.macs / max(compressed.macs, 1)
    passed = ratio >= contract.min_ratio
    detail = (f"MACs baseline {fmt_macs(baseline.macs)} / compressed {fmt_macs(compressed.macs)} = {ratio:.2f}x "
              f"{'>=' if passed else '<'} {contract.min_ratio:g}x required")
    if not passed:
        detail += f" (short by {contract.min_ratio - ratio:.2f}x)"
    return Verdict(name=name, kind="compute", passed=passed, status="pass" if passed else "fail", measured=ratio,
                   bound=contract.min_ratio, unit="MAC ratio", detail=detail)


def reference_memory_verdict(bound_pct: float, candidate: MemoryStats, reference: MemoryStats | None,
                             recorded_bytes: int | None, how: str) -> Verdict:
    """Peak-memory growth of the candidate vs the reference, in percent, on the repeats' range."""
    n = len(candidate.samples)
    if reference is not None:
        growth = [100.0 * (c / max(r, 1) - 1.0) for c, r in zip(candidate.samples, reference.samples, strict=True)]
        ref_text = f"reference {fmt_bytes(reference.median)} ({how})"
    else:
        assert recorded_bytes is not None
        growth = [100.0 * (c / max(recorded_bytes, 1) - 1.0) for c in candidate.samples]
        ref_text = f"reference {fmt_bytes(recorded_bytes)} ({how})"
    values = np.asarray(growth)
    est, low, high = float(np.median(values)), float(values.min()), float(values.max())
    status = _decide_at_most(low, high, bound_pct)
    detail = (f"peak memory vs reference: {est:+.1f}% ({_range_text(low, high, n, lambda v: f'{v:+.1f}%')}), "
              f"candidate {fmt_bytes(candidate.median)}, {ref_text}; at most +{bound_pct:g}% allowed: "
              + {"pass": "within", "fail": f"over by {est - bound_pct:.1f} points",
                 "inconclusive": "the range straddles the bound"}[status])
    return Verdict(name=f"reference: peak memory growth <= {bound_pct:g}%", kind="memory", passed=status == "pass",
                   status=status, measured=est, bound=bound_pct, unit="% peak memory vs reference", detail=detail,
                   origin="reference", ci_low=low if n >= 2 else None, ci_high=high if n >= 2 else None,
                   confidence=range_confidence(n), samples=n,
                   note=None if reference is not None else f"compared with recorded numbers: {how}")


def reference_macs_verdict(bound_pct: float, candidate_macs: int, reference_macs: int, how: str) -> Verdict:
    growth = 100.0 * (candidate_macs / max(reference_macs, 1) - 1.0)
    passed = growth <= bound_pct + 1e-9
    detail = (f"reference {fmt_macs(reference_macs)} ({how}), candidate {fmt_macs(candidate_macs)}: {growth:+.2f}% "
              f"{'<=' if passed else '>'} +{bound_pct:g}% allowed")
    return Verdict(name=f"reference: MACs growth <= {bound_pct:g}%", kind="compute", passed=passed,
                   status="pass" if passed else "fail", measured=growth, bound=bound_pct, unit="% MACs vs reference",
                   detail=detail, origin="reference")


def apply_policy(verdict: Verdict, gate: GateSpec, extra_repeats: int) -> Verdict:
    """An inconclusive memory verdict counts as ``gate.inconclusive`` says (as latency verdicts do)."""
    if verdict.status != "inconclusive":
        return verdict
    meaning = {"fail": "counted as a failure", "pass": "counted as a pass",
               "error": "the run exits 4 (undecided)"}[gate.inconclusive]
    note = (f"still inconclusive after {extra_repeats} extra repeat(s) per model: {meaning} "
            f"(gate.inconclusive: {gate.inconclusive})")
    return verdict.model_copy(update={"passed": gate.inconclusive == "pass",
                                      "note": f"{verdict.note}; {note}" if verdict.note else note})


# ------------------------------------------------------------------------------------------ measuring
def concrete_input_shapes(io: Any) -> dict[str, tuple[int, ...]] | None:
    """Every input's shape at batch 1 (None when one is still symbolic: the counter then uses 1 for it)."""
    try:
        return {spec.name: spec.concrete(1) for spec in io.inputs}
    except Exception:
        return None


def remote_reason(target: str, emulated: bool) -> str:
    where = "an emulated device" if emulated else "a remote device (RPC)"
    return (f"not measured: target {target} runs its sessions on {where}, so this host's memory is not the "
            "model's; edgecraft does not measure memory on the device itself")


def _memory_report(stats: MemoryStats, caveats: list[str], inputs: str) -> MemoryReport:
    return MemoryReport(measured=True, reason="; ".join(caveats) or None, inputs=inputs, **stats.as_dict())


def measure_resources(plan: CompressionPlan, *, registry: Registry, label: str, target: str, backend: Any, options: Any,
                      emulated: bool, artifacts: Mapping[str, Path], feeds: Mapping[str, np.ndarray],
                      input_shapes: Mapping[str, tuple[int, ...]] | None, reference: Any | None = None,
                      progress: Progress | None = None) -> ResourceResult:
    """Count compute and (when asked) measure peak memory of ``artifacts`` (baseline, compressed) on one target,
    and judge the plan's memory/compute contracts and reference bounds.

    ``reference`` is the gate's ReferenceSide (None without ``--reference``): when its artifact was loaded
    from the cache it is counted and measured alongside, else its recorded numbers are used.
    """
    progress = progress or NullProgress()
    result = ResourceResult()
    contracts = plan.contracts_for(label)
    bounds = plan.gate.reference if reference is not None else None
    paths = dict(artifacts)
    if reference is not None and reference.remeasured:
        paths[REFERENCE] = Path(reference.artifact)
    counted: dict[Path, ComputeReport | None] = {}
    for name, folder in paths.items():
        # One artifact in several roles (a plan without steps: baseline = compressed; an unchanged candidate: the
        # reference too) is counted once: the same files give the same count (was 3 counts per gate run of an
        # unchanged ResNet-18-sized model, ~5 s of a ~20 s run on a loaded runner).
        same = Path(folder).resolve()
        if same in counted:
            known = counted[same]
            result.compute[name] = None if known is None else known.model_copy(deep=True)
            continue
        # A count an earlier run kept on this artifact is reused; its notes say so (edgecraft.verify.compute_memo).
        count, _reused = artifact_compute(folder, None if name == BASELINE else paths[BASELINE], backend=backend,
                                          target=target, options=options, threads=plan.latency.threads,
                                          feeds=feeds, input_shapes=input_shapes)
        result.compute[name] = count
        counted[same] = count

    measured = Measured(plan, label, emulated, registry.metric, compute=result.compute)
    verdicts = [kind.judge(contract, measured) for contract, kind in of_measure(registry, contracts, ["compute"])]
    if bounds is not None and reference is not None and bounds.max_macs_growth_pct is not None:
        comp = result.compute.get(COMPRESSED)
        counted = result.compute.get(REFERENCE)
        if reference.remeasured and counted is not None:
            ref_macs, how = counted.macs, "counted on its artifact"
        else:
            recorded = (reference.entry.get("compressed", {}).get("compute") or {}).get("macs")
            if recorded is None:
                raise InputError(f"the reference report has no MAC count for target {label!r} (written by an "
                                 "edgecraft without compute counting, and its artifact is gone); set "
                                 "gate.reference.max_macs_growth_pct: null or re-run the reference")
            ref_macs, how = int(recorded), f"recorded numbers: {reference.reason}"
        if comp is None:
            raise InputError(f"gate.reference.max_macs_growth_pct on target {label!r}: the artifact has no ONNX graph "
                             "to count MACs on")
        verdicts.append(reference_macs_verdict(bounds.max_macs_growth_pct, comp.macs, ref_macs, how))

    if measures_memory(registry, plan, label):
        verdicts += _memory(measured, registry, result, label=label, target=target, backend=backend, options=options,
                            emulated=emulated, paths=paths, feeds=feeds, reference=reference, progress=progress)
    result.verdicts = verdicts
    return result


def _memory(measured: Measured, registry: Registry, result: ResourceResult, *, label: str, target: str,
            backend: Any, options: Any, emulated: bool, paths: Mapping[str, Path], feeds: Mapping[str, np.ndarray],
            reference: Any | None, progress: Progress) -> list[Verdict]:
    plan = measured.plan
    if not backend.measures_memory_locally(target, options):
        reason = remote_reason(target, emulated)
        for name in paths:
            result.memory[name] = MemoryReport(measured=False, reason=reason)
        return []  # memory contracts on such targets are refused at compile time
    contracts = of_measure(registry, plan.contracts_for(label), ["memory"])
    bounds = plan.gate.reference if reference is not None else None
    threads = getattr(options, "intra_op_threads", None) or plan.latency.threads
    inputs = ", ".join(f"{k} {list(np.shape(v))} {np.asarray(v).dtype}" for k, v in feeds.items())
    repeats = plan.measure.memory_repeats
    progress.status(f"{label}: measuring peak memory ({repeats} x {len(paths) + 1} child processes)")
    with MemoryMeter(paths, target=target, options=options.model_dump(mode="json"), feeds=feeds, threads=threads,
                     seed=plan.latency.seed) as meter:
        try:
            meter.take(repeats)

            def judge() -> list[Verdict]:
                stats = meter.stats()
                measured.memory = stats
                out = [kind.judge(contract, measured) for contract, kind in contracts]
                if bounds is not None and bounds.max_memory_growth_pct is not None:
                    out.append(_reference_memory(bounds.max_memory_growth_pct, stats, reference, label))
                return out

            verdicts = judge()
            extra = 0
            if any(v.status == "inconclusive" for v in verdicts):
                progress.status(f"{label}: memory verdict inconclusive; {repeats} more repeats")
                meter.take(repeats)
                extra = repeats
                verdicts = judge()
        except MemoryProbeError as exc:
            raise InputError(f"target {label!r}: peak memory could not be measured: {exc}",
                             hint="the memory probe loads the artifact in a fresh process through the backend "
                                  "plugin: check the plugin is installed as an entry point (not only registered in "
                                  "this process)") from exc
        caveats = []
        if not all(s.reset for s in meter.stats().values()):
            caveats.append("the kernel refused to reset the high-water mark: absolute marks were subtracted")
        if not meter.load_runtime_overridden:
            caveats.append(f"backend {backend.name!r} does not implement load_runtime(): the runtime's own "
                           "libraries are counted as the model's memory")
        for name, stats in meter.stats().items():
            result.memory[name] = _memory_report(stats, caveats, inputs)
    return [apply_policy(v, plan.gate, extra) for v in verdicts]


def _reference_memory(bound_pct: float, stats: Mapping[str, MemoryStats], reference: Any, label: str) -> Verdict:
    if REFERENCE in stats:
        return reference_memory_verdict(bound_pct, stats[COMPRESSED], stats[REFERENCE], None,
                                        "re-measured in the same rounds")
    recorded = (reference.entry.get("compressed", {}).get("memory") or {}).get("peak_bytes")
    if recorded is None:
        raise InputError(f"the reference report has no peak memory for target {label!r} (it ran without measuring "
                         "memory, and its artifact is gone); set gate.reference.max_memory_growth_pct: null or "
                         "re-run the reference with measure: {memory: true}")
    return reference_memory_verdict(bound_pct, stats[COMPRESSED], None, int(recorded),
                                    f"recorded numbers: {reference.reason}")
