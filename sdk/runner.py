"""run(plan): compile every target first, then build, measure and judge each one.

Every target is compiled before anything is built, so a plan with a step that one target cannot do
fails in seconds. Then, per target: the baseline (the plan's model with no steps) and the compressed
artifact are built (or taken from the cache), loaded on the target's runtime, evaluated on the same
data, timed interleaved on the same input, and judged against the contracts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgecraft import __version__
from edgecraft.backend import Session
from edgecraft.assembly.artifacts import MANIFEST, Artifact, ArtifactCache
from edgecraft.assembly.cache_verify import read_manifest
from edgecraft.assembly.pipeline import TargetPipeline
from edgecraft.compile.checks import RunInputs, compile_all, prepare, target_view
from edgecraft.compile.compiler import CompiledPlan
from edgecraft.errors import InputError
from edgecraft.execute import Executor
from edgecraft.plan import AccuracyContract, CompressionPlan, LatencyContract, ReferenceBounds, SizeContract
from edgecraft.progress import NullProgress, Progress
from edgecraft.registry import Registry
from edgecraft.verify.contracts import Verdict, judge_accuracy, judge_size
from edgecraft.verify.gate import (
    BASELINE,
    COMPRESSED,
    REFERENCE,
    ReferenceReport,
    ReferenceSide,
    exit_code_for,
    judge_latency_interval,
    overall_status,
    reference_accuracy_verdict,
    reference_latency_verdict,
    reference_size_verdict,
    settle,
)
from edgecraft.verify.measure import InterleavedTimer, latency_feeds
from edgecraft.verify.report import LatencyReport, MeasurementReport, ReferenceMeasurement, Report, TargetReport
from edgecraft.verify.resources import concrete_input_shapes, measure_resources


def _measurement(artifact_path: Path, size: int, cached: bool, metrics: dict[str, float], latency: LatencyReport,
                 steps: list[dict[str, object]], runtime: dict[str, Any], rebuilt: str | None = None
                 ) -> MeasurementReport:
    return MeasurementReport(metrics=metrics, latency_ms=latency, size_bytes=size, artifact=str(artifact_path),
                             cached=cached, steps=steps, runtime=runtime, cache_rebuilt_reason=rebuilt)


def _reference_side(ref_entry: dict[str, Any], reference: ReferenceReport, pipe: TargetPipeline,
                    compiled: CompiledPlan, base_key: str) -> tuple[ReferenceSide, Session | None]:
    """Load the reference artifact when it is still there (and the plan asks to), else use the recorded numbers."""
    bounds = compiled_bounds(pipe.plan)
    artifact = str(ref_entry.get("artifact") or ref_entry["compressed"].get("artifact", ""))
    recorded_base = Path(str(ref_entry["baseline"].get("artifact", ""))).name
    same_baseline = recorded_base == base_key
    recorded = {"metrics": {k: float(v) for k, v in ref_entry["compressed"].get("metrics", {}).items()},
                "size_bytes": int(ref_entry["compressed"].get("size_bytes", 0))}

    def fallback(reason: str) -> tuple[ReferenceSide, None]:
        return ReferenceSide(ref_entry, False, artifact, reason, recorded["metrics"], recorded["size_bytes"],
                             same_baseline), None

    if not bounds.remeasure:
        return fallback("gate.reference.remeasure is false")
    folder = Path(artifact)
    if not artifact or not (folder / MANIFEST).is_file():
        return fallback(f"the reference artifact {artifact or '(none recorded)'} is no longer in the cache")
    manifest, rejected = read_manifest(folder)  # verified like any cache entry: never load a damaged library
    if manifest is None:
        return fallback(f"the reference artifact failed verification: {rejected}")
    ref_art = Artifact(folder, manifest)
    built_for = ref_art.manifest.get("compiled_plan", {}).get("target")
    if built_for != compiled.target:
        raise InputError(f"--reference {reference.path}: the reference artifact {folder} was built for target "
                         f"{built_for!r}, not {compiled.target!r}")
    session = pipe.load(folder)
    side = ReferenceSide(ref_entry, True, str(folder), "re-measured", recorded["metrics"], ref_art.size_bytes,
                         same_baseline)
    return side, session


def compiled_bounds(plan: CompressionPlan) -> ReferenceBounds:
    if plan.gate.reference is None:
        raise InputError("--reference needs bounds in the plan: add a gate.reference section, e.g. "
                         "gate: {reference: {max_latency_regression_pct: 5, max_accuracy_drop: 0.005, "
                         "max_size_growth_pct: 1}}")
    return plan.gate.reference


def run_target(run: RunInputs, compiled: CompiledPlan, cache: ArtifactCache, progress: Progress,
               reference: ReferenceReport | None = None) -> TargetReport:
    plan, registry = run.plan, run.registry
    backend, _ = registry.target(compiled.target)
    view = target_view(plan, registry, compiled)
    emulated = view.emulated
    pipe = TargetPipeline(plan, registry, view, run.loader, run.datasets, cache, progress,
                          torch_memo=run.torch_memo, torch_stage_done=run.torch_stage_done,
                          baseline_memo=run.baseline_memo)
    gate = plan.gate

    base_art, base_cached = pipe.baseline_artifact(compiled)
    comp_art, comp_cached = pipe.build(compiled)
    progress.status(f"{view.label}: baseline {'from cache' if base_cached else 'built'}, compressed "
                    f"{'from cache' if comp_cached else 'built'} ({comp_art.path})")

    ref_side: ReferenceSide | None = None
    sessions: dict[str, Session] = {}
    try:
        sessions[BASELINE] = pipe.load(base_art.path)
        sessions[COMPRESSED] = pipe.load(comp_art.path)
        if reference is not None:
            ref_entry = reference.for_target(view.label, compiled.target)
            ref_side, ref_sess = _reference_side(ref_entry, reference, pipe, compiled, base_art.key)
            if ref_sess is not None:
                sessions[REFERENCE] = ref_sess
        dataset = pipe.eval_dataset()
        base_metrics: dict[str, float] = {}
        comp_metrics: dict[str, float] = {}
        if dataset is not None:
            base_metrics = pipe.baseline_metrics()
            comp_metrics, _ = pipe.session_metrics(sessions[COMPRESSED], "compressed")
            if ref_side is not None and ref_side.remeasured:
                ref_side.metrics, _ = pipe.session_metrics(sessions[REFERENCE], "reference")
        feeds = latency_feeds(run.loader.io(), plan.latency.batch_size, plan.latency.seed, pipe.eval_data())
        timer = InterleavedTimer(sessions, feeds, plan.latency, progress=progress)
        timer.take(plan.latency.rounds)

        judges: list[Callable[[], Verdict]] = []
        for contract in plan.contracts_for(view.label):
            if isinstance(contract, AccuracyContract):
                if contract.metric not in base_metrics:
                    raise InputError(f"contract {contract.describe_bound()!r} needs metric {contract.metric!r}; add "
                                     f"it to evaluation.metrics (now {plan.evaluation.metrics})")
                verdict = judge_accuracy(contract, registry.metric(contract.metric), base_metrics, comp_metrics)
                judges.append(lambda v=verdict: v)
            elif isinstance(contract, LatencyContract):
                judges.append(lambda c=contract: judge_latency_interval(c, timer, gate, emulated=emulated,
                                                                        seed=plan.latency.seed))
            elif isinstance(contract, SizeContract):
                verdict = judge_size(contract, base_art.size_bytes, comp_art.size_bytes)
                judges.append(lambda v=verdict: v)
        if ref_side is not None:
            bounds = compiled_bounds(plan)
            if bounds.max_latency_regression_pct is not None:
                judges.append(lambda: reference_latency_verdict(bounds, gate, timer, ref_side, emulated=emulated,
                                                                seed=plan.latency.seed))
            if bounds.max_accuracy_drop is not None:
                if dataset is None:
                    raise InputError("gate.reference.max_accuracy_drop needs evaluation.dataset (or set it to null)")
                verdict = reference_accuracy_verdict(bounds, registry.metric(bounds.metric).higher_is_better,
                                                     ref_side, comp_metrics)
                judges.append(lambda v=verdict: v)
            if bounds.max_size_growth_pct is not None:
                verdict = reference_size_verdict(bounds, ref_side, comp_art.size_bytes)
                judges.append(lambda v=verdict: v)
        settled = settle(judges, timer, gate, label=view.label, progress=progress)
        stats = timer.stats()
        timing = {**timer.describe(), "extra_seconds": round(settled.extra_seconds, 3)}
        device = {**sessions[BASELINE].describe()}
        runtime = {name: sessions[name].describe() for name in (BASELINE, COMPRESSED)}
    finally:
        for session in sessions.values():
            session.close()

    # Memory and compute (issue 17): after timing, with this process's sessions closed.
    resources = measure_resources(
        plan, label=view.label, target=compiled.target, backend=backend, options=view.options, emulated=emulated,
        artifacts={BASELINE: base_art.path, COMPRESSED: comp_art.path}, feeds=feeds,
        input_shapes=concrete_input_shapes(run.loader.io()), reference=ref_side, progress=progress)
    verdicts = settled.verdicts + resources.verdicts
    n_rounds = timer.n_rounds

    def lat(name: str) -> LatencyReport:
        return LatencyReport(**stats[name].as_dict(), rounds=n_rounds)

    ratios = {
        "speedup_p50": stats[BASELINE].p50 / stats[COMPRESSED].p50,
        "size_ratio": base_art.size_bytes / max(comp_art.size_bytes, 1),
    }
    reference_report = None
    if ref_side is not None and reference is not None:
        recorded_latency = None
        if not ref_side.remeasured:
            raw = dict(ref_side.entry["compressed"]["latency_ms"])
            raw.pop("rounds", None)
            recorded_latency = LatencyReport.model_validate({k: raw[k] for k in raw if k in LatencyReport.model_fields})
        reference_report = ReferenceMeasurement(
            report=str(reference.path), artifact=ref_side.artifact, remeasured=ref_side.remeasured,
            how=("loaded from the cache and measured interleaved with the candidate" if ref_side.remeasured
                 else f"recorded numbers: {ref_side.reason}"),
            metrics=ref_side.metrics, latency_ms=lat(REFERENCE) if ref_side.remeasured else recorded_latency,
            size_bytes=ref_side.size_bytes)
        ratios["latency_vs_reference_p50"] = stats[COMPRESSED].p50 / (
            stats[REFERENCE].p50 if ref_side.remeasured else float(ref_side.entry["compressed"]["latency_ms"]["p50"]))
    report = TargetReport(
        target=view.label, target_name=compiled.target, backend=backend.name,
        passed=all(v.passed for v in verdicts),
        baseline=_measurement(base_art.path, base_art.size_bytes, base_cached, base_metrics, lat(BASELINE), [],
                              runtime[BASELINE], base_art.rebuilt_reason),
        compressed=_measurement(comp_art.path, comp_art.size_bytes, comp_cached, comp_metrics, lat(COMPRESSED),
                                comp_art.manifest.get("steps", []), runtime[COMPRESSED], comp_art.rebuilt_reason),
        contracts=verdicts, artifact=str(comp_art.path), compiled_key=compiled.key(), device=device,
        emulated=emulated, ratios=ratios, status=overall_status(verdicts), reference=reference_report,
        extra_rounds=settled.extra_rounds, timing=timing)
    resources.attach(report)
    return report


def run_plan(plan: CompressionPlan, registry: Registry, *, base_dir: Path | str = ".",
             targets: list[str] | None = None, cache_dir: Path | None = None,
             progress: Progress | None = None, plan_path: str = "<python>",
             reference: ReferenceReport | Path | str | None = None, no_cache: bool = False,
             executor: Executor | None = None) -> Report:
    """Compile, build, measure and judge ``plan`` on ``targets`` (default: all of the plan's targets).

    ``reference``: the report of the last released artifact; adds the plan's ``gate.reference`` bounds
    as verdicts (checked against every target before anything is built). ``executor``: where each
    target's build and measurement run (default: here, in order; see :mod:`edgecraft.execute`); every
    target is compiled here first either way.
    """
    from edgecraft.execute.local import InProcessExecutor

    progress = progress or NullProgress()
    run = prepare(plan, registry, Path(base_dir))
    labels = targets or [t.label for t in plan.targets]
    compiled = compile_all(run, labels)
    if reference is not None and not isinstance(reference, ReferenceReport):
        reference = ReferenceReport.load(reference)
    if reference is not None:
        compiled_bounds(plan)
        for label in labels:
            reference.for_target(label, compiled[label].target)
    cache = ArtifactCache(cache_dir, reuse=not no_cache)  # no_cache: rebuild every artifact, replacing entries
    registry.notify("edgecraft_run_started", plan=plan.model_dump(mode="json", by_alias=True), targets=labels)
    executor = executor or InProcessExecutor()
    reports = executor.run_targets(
        run, compiled, labels, cache, progress, reference,
        lambda target_report: registry.notify("edgecraft_target_finished",
                                              target=target_report.model_dump(mode="json")))
    verdicts = [v for r in reports for v in r.contracts]
    return Report(passed=all(r.passed for r in reports), plan=plan_path, plan_name=plan.name,
                  edgecraft_version=__version__, created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  evaluation_dataset=plan.evaluation.dataset, targets=reports, status=overall_status(verdicts),
                  exit_code=exit_code_for(verdicts, plan.gate.inconclusive),
                  gate=plan.gate.model_dump(mode="json"),
                  reference_report=str(reference.path) if reference is not None else None,
                  executor=executor.describe())
