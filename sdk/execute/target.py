"""One target of a run, compiled already: build, load, evaluate, time and judge it into its report.

Every executor runs this same code wherever the target goes (this process, a Ray node; a search's
trials too), so a report means the same wherever it was measured. Per target: the baseline (the plan's
model with no steps) and the compressed artifact are built (or taken from the cache), loaded on the
target's runtime, evaluated on the same data, timed interleaved on the same input, and judged against
the contracts through their kinds (:mod:`edgecraft.verify.judging`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from edgecraft.assembly.artifact_io import ArtifactIO
from edgecraft.assembly.artifacts import Artifact, ArtifactCache
from edgecraft.assembly.builder import Builder
from edgecraft.backend import Session
from edgecraft.compile.checks import RunInputs, target_view
from edgecraft.compile.compiler import CompiledPlan
from edgecraft.context import TargetView
from edgecraft.execute.reference import already_judged, reference_judges, reference_side
from edgecraft.progress import Progress
from edgecraft.verify.contracts import Verdict
from edgecraft.verify.evaluator import TargetEvaluator
from edgecraft.verify.gate import (
    BASELINE,
    COMPRESSED,
    REFERENCE,
    ReferenceReport,
    ReferenceSide,
    overall_status,
    settle,
)
from edgecraft.verify.judging import WITH_SESSIONS, Measured, of_measure
from edgecraft.verify.measure import InterleavedTimer, latency_feeds
from edgecraft.verify.report import LatencyReport, MeasurementReport, ReferenceMeasurement, TargetReport
from edgecraft.verify.resources import concrete_input_shapes, measure_resources


@dataclass
class TargetServices:
    """What works on one target: saving and loading there, evaluating there, building for it."""

    view: TargetView
    artifact_io: ArtifactIO
    evaluator: TargetEvaluator
    builder: Builder

    @classmethod
    def of(cls, run: RunInputs, compiled: CompiledPlan, cache: ArtifactCache, progress: Progress) -> TargetServices:
        plan = run.plan
        view = target_view(plan, run.registry, compiled)
        artifact_io = ArtifactIO.of(run.registry, view, plan.latency.threads, run.loader.export_options)
        evaluator = TargetEvaluator(plan, run.registry, view.label, run.datasets, artifact_io, run.loader.io(),
                                    progress, baseline_memo=run.baseline_memo)
        builder = Builder(plan, run.registry, view, run.loader, run.datasets, cache, artifact_io, progress,
                          evaluator=evaluator if plan.evaluation.dataset is not None else None,
                          torch_memo=run.torch_memo, torch_stage_done=run.torch_stage_done)
        return cls(view, artifact_io, evaluator, builder)

    def build(self, compiled: CompiledPlan) -> tuple[tuple[Artifact, bool], tuple[Artifact, bool]]:
        """(baseline, cached), (compressed, cached): the baseline first, since steps measure against it."""
        baseline = self.builder.baseline_artifact(compiled)
        self.evaluator.use_baseline(baseline[0])
        return baseline, self.builder.build(compiled)


def _measurement(artifact: Artifact, cached: bool, metrics: dict[str, float], latency: LatencyReport,
                 steps: list[dict[str, object]], runtime: dict[str, Any]) -> MeasurementReport:
    return MeasurementReport(metrics=metrics, latency_ms=latency, size_bytes=artifact.size_bytes,
                             artifact=str(artifact.path), cached=cached, steps=steps, runtime=runtime,
                             cache_rebuilt_reason=artifact.rebuilt_reason, export=artifact.manifest.get("export"))


def run_target(run: RunInputs, compiled: CompiledPlan, cache: ArtifactCache, progress: Progress,
               reference: ReferenceReport | None = None) -> TargetReport:
    plan, registry = run.plan, run.registry
    backend, _ = registry.target(compiled.target)
    services = TargetServices.of(run, compiled, cache, progress)
    view, evaluator, emulated = services.view, services.evaluator, services.view.emulated
    (base_art, base_cached), (comp_art, comp_cached) = services.build(compiled)
    progress.status(f"{view.label}: baseline {'from cache' if base_cached else 'built'}, compressed "
                    f"{'from cache' if comp_cached else 'built'} ({comp_art.path})")

    ref_side: ReferenceSide | None = None
    sessions: dict[str, Session] = {}
    try:
        sessions[BASELINE] = services.artifact_io.load(base_art.path)
        # No step changed the model: the compressed artifact is the baseline's, loaded and timed once.
        sessions[COMPRESSED] = (sessions[BASELINE] if comp_art.path == base_art.path
                                else services.artifact_io.load(comp_art.path))
        if reference is not None:
            ref_entry = reference.for_target(view.label, compiled.target)
            ref_side, ref_sess = reference_side(ref_entry, reference, plan, services.artifact_io, compiled,
                                                base_art.key)
            if ref_sess is not None:
                sessions[REFERENCE] = ref_sess
        dataset = evaluator.eval_dataset()
        base_metrics: dict[str, float] = {}
        comp_metrics: dict[str, float] = {}
        if dataset is not None:
            base_metrics = evaluator.baseline_metrics()
            comp_metrics, _ = evaluator.session_metrics(sessions[COMPRESSED], "compressed")
            if ref_side is not None and ref_side.remeasured:
                ref_side.metrics, _ = evaluator.session_metrics(sessions[REFERENCE], "reference")
        feeds = latency_feeds(run.loader.io(), plan.latency.batch_size, plan.latency.seed, evaluator.eval_data())
        timer = InterleavedTimer(sessions, feeds, plan.latency, progress=progress)
        timer.take(plan.latency.rounds)

        measured = Measured(plan, view.label, emulated, registry.metric,
                            metrics={BASELINE: base_metrics, COMPRESSED: comp_metrics}, timer=timer,
                            size_bytes={BASELINE: base_art.size_bytes, COMPRESSED: comp_art.size_bytes})
        judges: list[Callable[[], Verdict]] = []
        for contract, kind in of_measure(registry, plan.contracts_for(view.label), WITH_SESSIONS):
            if kind.settles:  # judged again after every look, as more rounds come in
                judges.append(partial(kind.judge, contract, measured))
            else:
                judges.append(partial(already_judged, kind.judge(contract, measured)))
        if ref_side is not None:
            judges += reference_judges(plan, registry, ref_side, timer, emulated=emulated,
                                       has_dataset=dataset is not None, metrics=comp_metrics,
                                       size_bytes=comp_art.size_bytes)
        settled = settle(judges, timer, plan.gate, label=view.label, progress=progress)
        stats = timer.stats()
        timing = {**timer.describe(), "extra_seconds": round(settled.extra_seconds, 3)}
        # each session described once (ORT's describe() reads the model's int8 layers: ~0.7 s for a ResNet-18)
        runtime = {BASELINE: sessions[BASELINE].describe()}
        runtime[COMPRESSED] = (dict(runtime[BASELINE]) if sessions[COMPRESSED] is sessions[BASELINE]
                               else sessions[COMPRESSED].describe())
        device = dict(runtime[BASELINE])
    finally:
        for session in {id(s): s for s in sessions.values()}.values():
            session.close()

    # Memory and compute (issue 17): after timing, with this process's sessions closed.
    resources = measure_resources(
        plan, registry=registry, label=view.label, target=compiled.target, backend=backend, options=view.options,
        emulated=emulated, artifacts={BASELINE: base_art.path, COMPRESSED: comp_art.path}, feeds=feeds,
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
        reference_report = _reference_measurement(ref_side, reference.path, lat(REFERENCE) if ref_side.remeasured
                                                  else None)
        ratios["latency_vs_reference_p50"] = stats[COMPRESSED].p50 / (
            stats[REFERENCE].p50 if ref_side.remeasured else float(ref_side.entry["compressed"]["latency_ms"]["p50"]))
    report = TargetReport(
        target=view.label, target_name=compiled.target, backend=backend.name,
        passed=all(v.passed for v in verdicts),
        baseline=_measurement(base_art, base_cached, base_metrics, lat(BASELINE), [], runtime[BASELINE]),
        compressed=_measurement(comp_art, comp_cached, comp_metrics, lat(COMPRESSED),
                                comp_art.manifest.get("steps", []), runtime[COMPRESSED]),
        contracts=verdicts, artifact=str(comp_art.path), compiled_key=compiled.key(), device=device,
        emulated=emulated, ratios=ratios, status=overall_status(verdicts), reference=reference_report,
        extra_rounds=settled.extra_rounds, timing=timing)
    resources.attach(report)
    return report


def _reference_measurement(side: ReferenceSide, report_path: Path,
                           remeasured: LatencyReport | None) -> ReferenceMeasurement:
    """The reference's entry in the target's report: re-measured here, or its recorded numbers."""
    recorded_latency = None
    if not side.remeasured:
        raw = dict(side.entry["compressed"]["latency_ms"])
        raw.pop("rounds", None)
        recorded_latency = LatencyReport.model_validate({k: raw[k] for k in raw if k in LatencyReport.model_fields})
    return ReferenceMeasurement(
        report=str(report_path), artifact=side.artifact, remeasured=side.remeasured,
        how=("loaded from the cache and measured interleaved with the candidate" if side.remeasured
             else f"recorded numbers: {side.reason}"),
        metrics=side.metrics, latency_ms=remeasured if side.remeasured else recorded_latency,
        size_bytes=side.size_bytes)
