"""run(plan): compile every target first, then build, measure and judge each one.

Every target is compiled before anything is built, so a plan with a step that one target cannot do
fails in seconds. Then, per target: the baseline (the plan's model with no steps) and the compressed
artifact are built (or taken from the cache), loaded on the target's runtime, evaluated on the same
data, timed interleaved on the same input, and judged against the contracts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from edgecraft import __version__
from edgecraft.artifacts import ArtifactCache
from edgecraft.builder import TargetPipeline
from edgecraft.compiler import CompiledPlan, compile_plan
from edgecraft.context import TargetView
from edgecraft.contracts import Verdict, judge_accuracy, judge_latency, judge_size
from edgecraft.datasets import DatasetStore
from edgecraft.errors import CompileError, InputError
from edgecraft.measure import latency_feeds, measure_latency
from edgecraft.model_source import ModelSourceLoader
from edgecraft.plan import AccuracyContract, CompressionPlan, LatencyContract, SizeContract
from edgecraft.progress import NullProgress, Progress
from edgecraft.registry import Registry
from edgecraft.report import LatencyReport, MeasurementReport, Report, TargetReport


@dataclass
class RunInputs:
    """Everything shared by the targets of one run."""

    plan: CompressionPlan
    registry: Registry
    base_dir: Path
    loader: ModelSourceLoader
    datasets: DatasetStore


def prepare(plan: CompressionPlan, registry: Registry, base_dir: Path) -> RunInputs:
    return RunInputs(plan, registry, base_dir, ModelSourceLoader(plan.model, base_dir),
                    DatasetStore(plan.data, base_dir))


def compile_all(run: RunInputs, labels: list[str]) -> dict[str, CompiledPlan]:
    """Compile every requested target; also check data shapes and emulated-latency contracts."""
    compiled = {label: compile_plan(run.plan, label, run.registry, loader=run.loader, datasets=run.datasets)
                for label in labels}
    spec = run.loader.input_spec()
    if run.plan.evaluation.dataset is not None:
        run.datasets.get(run.plan.evaluation.dataset).check_fits(spec.shape)
    for label, cp in compiled.items():
        _, info = run.registry.target(cp.target)
        for contract in run.plan.contracts_for(label):
            if isinstance(contract, LatencyContract) and info.emulated and not contract.allow_emulated:
                raise CompileError(
                    f"a latency contract ({contract.describe_bound()}) cannot be judged on an emulated device: "
                    "emulated timings say nothing about a real core", target=label,
                    hint="run it on a real board (RPC options), or set allow_emulated: true on the contract "
                         "to accept a verdict labelled emulated")
        for step in cp.steps:
            for name in step.needs_data:
                run.datasets.get(name)  # loads and validates before anything is built
    return compiled


def _measurement(artifact_path: Path, size: int, cached: bool, metrics: dict[str, float], latency: LatencyReport,
                 steps: list[dict[str, object]]) -> MeasurementReport:
    return MeasurementReport(metrics=metrics, latency_ms=latency, size_bytes=size, artifact=str(artifact_path),
                             cached=cached, steps=steps)


def run_target(run: RunInputs, compiled: CompiledPlan, cache: ArtifactCache, progress: Progress) -> TargetReport:
    plan, registry = run.plan, run.registry
    backend, info = registry.target(compiled.target)
    spec_entry = next(t for t in plan.targets if t.label == compiled.target_label)
    options = spec_entry.options if isinstance(spec_entry.options, info.options_model) else \
        info.options_model.model_validate(spec_entry.options)
    view = TargetView(compiled.target_label, compiled.target, backend.name, info, options)
    pipe = TargetPipeline(plan, registry, view, run.loader, run.datasets, cache, progress)

    base_art, base_cached = pipe.baseline_artifact(compiled)
    comp_art, comp_cached = pipe.build(compiled)
    progress.status(f"{view.label}: baseline {'from cache' if base_cached else 'built'}, compressed "
                    f"{'from cache' if comp_cached else 'built'} ({comp_art.path})")

    base_sess, comp_sess = pipe.load(base_art.path), pipe.load(comp_art.path)
    try:
        dataset = pipe.eval_dataset()
        base_metrics: dict[str, float] = {}
        comp_metrics: dict[str, float] = {}
        if dataset is not None:
            base_metrics = pipe.baseline_metrics()
            comp_metrics, _ = pipe.session_metrics(comp_sess, "compressed")
        feeds = latency_feeds(base_sess, tuple(compiled.input_shape), plan.latency.batch_size, plan.latency.seed,
                              dataset)
        stats = measure_latency({"baseline": base_sess, "compressed": comp_sess}, feeds, plan.latency,
                                progress=progress)
        device = {**base_sess.describe()}
    finally:
        base_sess.close()
        comp_sess.close()

    verdicts: list[Verdict] = []
    for contract in plan.contracts_for(view.label):
        if isinstance(contract, AccuracyContract):
            if contract.metric not in base_metrics:
                raise InputError(f"contract {contract.describe_bound()!r} needs metric {contract.metric!r}; add it "
                                 f"to evaluation.metrics (now {plan.evaluation.metrics})")
            verdicts.append(judge_accuracy(contract, registry.metric(contract.metric), base_metrics, comp_metrics))
        elif isinstance(contract, LatencyContract):
            verdicts.append(judge_latency(contract, stats["baseline"], stats["compressed"], emulated=info.emulated))
        elif isinstance(contract, SizeContract):
            verdicts.append(judge_size(contract, base_art.size_bytes, comp_art.size_bytes))

    def lat(name: str) -> LatencyReport:
        return LatencyReport(**stats[name].as_dict())

    ratios = {
        "speedup_p50": stats["baseline"].p50 / stats["compressed"].p50,
        "size_ratio": base_art.size_bytes / max(comp_art.size_bytes, 1),
    }
    return TargetReport(
        target=view.label, target_name=compiled.target, backend=backend.name,
        passed=all(v.passed for v in verdicts),
        baseline=_measurement(base_art.path, base_art.size_bytes, base_cached, base_metrics, lat("baseline"), []),
        compressed=_measurement(comp_art.path, comp_art.size_bytes, comp_cached, comp_metrics, lat("compressed"),
                                comp_art.manifest.get("steps", [])),
        contracts=verdicts, artifact=str(comp_art.path), compiled_key=compiled.key(), device=device,
        emulated=info.emulated, ratios=ratios)


def run_plan(plan: CompressionPlan, registry: Registry, *, base_dir: Path | str = ".",
             targets: list[str] | None = None, cache_dir: Path | None = None,
             progress: Progress | None = None, plan_path: str = "<python>") -> Report:
    """Compile, build, measure and judge ``plan`` on ``targets`` (default: all of the plan's targets)."""
    progress = progress or NullProgress()
    run = prepare(plan, registry, Path(base_dir))
    labels = targets or [t.label for t in plan.targets]
    compiled = compile_all(run, labels)
    cache = ArtifactCache(cache_dir)
    reports = [run_target(run, compiled[label], cache, progress) for label in labels]
    return Report(passed=all(r.passed for r in reports), plan=plan_path, plan_name=plan.name,
                  edgecraft_version=__version__, created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  evaluation_dataset=plan.evaluation.dataset, targets=reports)
