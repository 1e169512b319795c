"""Build artifacts for one target: model source → torch steps → ONNX → graph steps → native steps → backend files.

A :class:`TargetPipeline` owns everything about one target entry of a run: the backend, its
options, the cache, and the baseline's outputs (the reference for agreement metrics and for
accuracy-aware steps). Each artifact is built in a temporary folder and moved into the cache only
when complete (see :mod:`edgecraft.assembly.artifacts`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecraft.backend import Backend, Session
from edgecraft.assembly.artifacts import Artifact, ArtifactCache, write_manifest
from edgecraft.assembly.cache_verify import work_dir
from edgecraft.compile.compiler import CompiledPlan
from edgecraft.context import RunContext, TargetView
from edgecraft.datasets import Dataset, DatasetStore
from edgecraft.errors import EdgecraftError, RuntimeFailure
from edgecraft.feeds import BoundData
from edgecraft.logging_setup import third_party_output
from edgecraft.model_source import ModelSourceLoader, export_onnx
from edgecraft.models import ModelHandle, NativeModel, OnnxModel, Stage, TorchModel
from edgecraft.plan import CompressionPlan
from edgecraft.plugin_checks import call_plugin, check_saved_files, check_session, check_step_result
from edgecraft.progress import NullProgress, Progress
from edgecraft.registry import Registry
from edgecraft.verify.measure import Outputs, check_finite, compute_metrics, run_outputs


def _backend_call(backend: Backend, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call into a backend, turning unexpected exceptions into a RuntimeFailure that names it."""
    try:
        return fn(*args, **kwargs)
    except (EdgecraftError, KeyboardInterrupt):
        raise
    except BaseException as exc:  # SystemExit too: a backend must not decide the exit code
        raise RuntimeFailure(f"backend {backend.name!r} failed to {what}: {type(exc).__name__}: {exc}") from exc


@dataclass
class TargetPipeline:
    plan: CompressionPlan
    registry: Registry
    view: TargetView
    loader: ModelSourceLoader
    datasets: DatasetStore
    cache: ArtifactCache
    progress: Progress = field(default_factory=NullProgress)
    #: Torch-stage results keyed by what determines them (model, resolved torch steps, their data).
    #: Shared by the targets of one run, so pruning or distillation trains once, not once per target.
    #: Torch-stage steps must therefore not depend on the target except through their resolved params.
    torch_memo: dict[str, tuple[TorchModel, list[dict[str, Any]]]] = field(default_factory=dict)
    #: Called with (pipeline, torch model, torch key) once every torch-stage step of a build is done, before
    #: export, graph steps and timing. A search stops hopeless trials here by raising (see edgecraft.search).
    torch_stage_done: Callable[[TargetPipeline, TorchModel, str], None] | None = None
    #: Baseline outputs by baseline artifact key, shared by the runs of a search: the baseline is evaluated once
    #: per target, not once per trial (its latency is still timed in every run, interleaved with the candidate).
    baseline_memo: dict[str, Outputs] | None = None
    _baseline_outputs: Outputs | None = None
    _baseline_metrics: dict[str, float] | None = None
    _baseline_artifact: Artifact | None = None

    @property
    def backend(self) -> Backend:
        return self.registry.backend(self.view.backend_name)

    @property
    def threads(self) -> int:
        return self.plan.latency.threads

    # ------------------------------------------------------------------ conversions
    def _export_options(self) -> dict[str, Any]:
        return self.loader.export_options()

    def _to_onnx(self, handle: ModelHandle, work: Path) -> OnnxModel:
        if isinstance(handle, OnnxModel):
            return handle
        if isinstance(handle, TorchModel):
            return export_onnx(handle, work / "exported.onnx", **self._export_options())
        raise RuntimeFailure("a native model cannot be turned back into ONNX")

    def _to_native(self, handle: ModelHandle, work: Path) -> NativeModel:
        if isinstance(handle, NativeModel):
            return handle
        onnx_model = self._to_onnx(handle, work)
        native = _backend_call(self.backend, f"import {onnx_model.path.name}", self.backend.import_onnx,
                               onnx_model.path, self.view.target, self.view.options, work)
        return NativeModel(native, self.view.info.native_format or self.backend.name, onnx_model.io,
                           list(onnx_model.lineage))

    def _save(self, handle: ModelHandle, out: Path, work: Path) -> list[Path]:
        native = self._to_native(handle, work)
        files = _backend_call(self.backend, "save the artifact", self.backend.save, native.model, self.view.target,
                              self.view.options, out)
        return check_saved_files(files, out, who=self._backend_who())

    def _backend_who(self) -> str:
        return f"backend {self.backend.name!r} from {self.registry.backends[self.view.backend_name].provenance}"

    def load(self, folder: Path) -> Session:
        return check_session(_backend_call(self.backend, f"load the artifact in {folder}", self.backend.load, folder,
                                           self.view.target, self.view.options, self.threads), who=self._backend_who())

    # ------------------------------------------------------------------ steps
    def _run_context(self, step: Any, work: Path) -> RunContext:
        original = self.loader.original_copy if self.loader.kind == "torch" else None
        has_eval = self.plan.evaluation.dataset is not None
        return RunContext(plan=self.plan, target=self.view, backend=self.backend, step=step, work_dir=work,
                          datasets=self.datasets, seed=self.plan.seed, base_dir=self.loader.base_dir,
                          progress=self.progress,
                          original_model=original,
                          evaluator=self.evaluate_handle if has_eval else None,
                          baseline_metrics=self.baseline_metrics if has_eval else None,
                          model_io=self.loader.io)

    @staticmethod
    def _torch_key(compiled: CompiledPlan) -> str | None:
        torch_steps = [s.model_dump(mode="json") for s in compiled.steps if s.stage == Stage.TORCH]
        if not torch_steps:
            return None
        used = sorted({n for s in compiled.steps if s.stage == Stage.TORCH for n in s.needs_data})
        payload = {"model": compiled.model_fingerprint, "steps": torch_steps,
                   "data": {n: compiled.data_fingerprints.get(n) for n in used}}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def _apply_steps(self, compiled: CompiledPlan, work: Path) -> tuple[ModelHandle, list[dict[str, Any]]]:
        handle: ModelHandle = self.loader.fresh()
        details: list[dict[str, Any]] = []
        steps = list(compiled.steps)
        key = self._torch_key(compiled)
        if key is not None and key in self.torch_memo:
            module, memo_details = self.torch_memo[key]
            handle = module.copy()
            details = [dict(d, reused_from_other_target=True) for d in memo_details]
            steps = [s for s in steps if s.stage != Stage.TORCH]
            self.progress.status(f"{self.view.label}: torch-stage steps reused from an earlier target of this run")
            if self.torch_stage_done is not None:
                self.torch_stage_done(self, handle, key)
        for step in steps:
            if step.stage == Stage.ONNX and isinstance(handle, TorchModel):
                handle = self._to_onnx(handle, work)
            elif step.stage == Stage.NATIVE and not isinstance(handle, NativeModel):
                handle = self._to_native(handle, work)
            strategy = self.registry.strategy(step.strategy)
            self.progress.status(f"{self.view.label}: {step.where} {step.strategy} ({step.implementation})")
            prov = self.registry.provenance_of_strategy(step.strategy)
            who = f"{step.where}: strategy {step.strategy!r} from {prov} on target {self.view.label!r}"
            with third_party_output(step.strategy):  # NNCF & co. print; under the CLI that goes to --verbose
                result = check_step_result(call_plugin(strategy.apply, step, handle, self._run_context(step, work),
                                                       who=who, hook="apply()"), step, who=who)
            handle = result.model
            details.append({"index": step.index, "label": step.label, "strategy": step.strategy,
                            "implementation": step.implementation, **result.details})
            if key is not None and isinstance(handle, TorchModel) and step.stage == Stage.TORCH and all(
                    s.stage != Stage.TORCH for s in compiled.steps[step.index + 1:]):
                snapshot = handle.copy()
                self.torch_memo[key] = (snapshot, [dict(d) for d in details])
                if self.torch_stage_done is not None:
                    self.torch_stage_done(self, handle, key)
        return handle, details

    # ------------------------------------------------------------------ artifacts
    def build(self, compiled: CompiledPlan) -> tuple[Artifact, bool]:
        """The artifact for ``compiled``, from the cache when an identical build exists."""
        key = compiled.key()
        hit = self.cache.lookup(key)
        if hit is not None:
            return hit, True
        what = "baseline" if compiled.is_baseline else "compressed"
        rejected = self.cache.rejected.get(key)
        if rejected:
            self.progress.status(f"{self.view.label}: cached {what} artifact rejected ({rejected}); rebuilding it")
        self.progress.status(f"{self.view.label}: building the {what} artifact")
        with self.cache.building(key) as out, work_dir("edgecraft-work-") as tmp:
            work = Path(tmp)
            handle, details = self._apply_steps(compiled, work)
            extra: dict[str, Any] = {}
            lineage = out / "lineage"
            lineage.mkdir()
            if isinstance(handle, TorchModel):
                extra["torch_program"] = self._save_torch_program(handle, lineage) if compiled.steps else None
                handle = self._to_onnx(handle, work)
            if isinstance(handle, OnnxModel):
                # The graph the backend imported: portable, and enough to rebuild any step's result.
                shutil.copyfile(handle.path, lineage / "model.onnx")
            files = self._save(handle, out, work)
            size = _backend_call(self.backend, "measure the artifact size", self.backend.artifact_size, files)
            manifest = write_manifest(out, key=key, compiled=compiled.model_dump(mode="json", by_alias=True),
                                      files=files, size_bytes=size, steps=details, extra=extra)
        return Artifact(self.cache.path_for(key), manifest, rebuilt_reason=rejected), False

    @staticmethod
    def _save_torch_program(handle: TorchModel, lineage: Path) -> str | None:
        """Save the compressed torch model as a torch.export program: it rebuilds without the original
        class (pruned models no longer match their class's constructor)."""
        import torch

        try:
            example = tuple(handle.example_inputs(batch=2))  # batch 2: batch 1 would be specialized
            dims: dict[str, Any] = {}
            shapes = tuple({axis: dims.setdefault(name, torch.export.Dim(name.replace("?", "d"), min=1, max=4096))
                            for axis, name in axes.items()} or None for axes in handle.dynamic_axes().values())
            program = torch.export.export(handle.module.eval(), example, dynamic_shapes=shapes)
            torch.export.save(program, str(lineage / "torch_model.pt2"))
        except Exception as exc:  # the ONNX graph still carries the model; note why the program is missing
            return f"not saved: {type(exc).__name__}: {exc}"
        return "lineage/torch_model.pt2"

    # ------------------------------------------------------------------ evaluation
    def eval_dataset(self) -> Dataset | None:
        name = self.plan.evaluation.dataset
        return None if name is None else self.datasets.get(name)

    def eval_data(self) -> BoundData | None:
        """The evaluation dataset as feeds for the plan's model."""
        name = self.plan.evaluation.dataset
        return None if name is None else self.datasets.bound(name)

    def metrics_list(self) -> list[Any]:
        return [self.registry.metric(m, where="evaluation.metrics") for m in self.plan.evaluation.metrics]

    @property
    def primary_output(self) -> str:
        io = self.loader.io()
        return io.output_names[io.output_index(self.plan.evaluation.output)] if io.outputs else "output0"

    @property
    def baseline_size_bytes(self) -> int | None:
        """The baseline artifact's size once it is built (a search's stopped trial reads it)."""
        return self._baseline_artifact.size_bytes if self._baseline_artifact is not None else None

    def baseline_artifact(self, compiled: CompiledPlan) -> tuple[Artifact, bool]:
        artifact, cached = self.build(compiled.baseline())
        self._baseline_artifact = artifact
        return artifact, cached

    def _outputs(self, session: Session, label: str) -> Outputs:
        data = self.eval_data()
        assert data is not None
        outputs = run_outputs(session, data, self.plan.evaluation.batch_size, progress=self.progress,
                              label=f"{self.view.label} {label}")
        check_finite(outputs, label=f"{self.view.label} {label}", allow=self.plan.evaluation.allow_non_finite)
        return outputs

    def baseline_outputs(self) -> Outputs:
        if self._baseline_outputs is None and self.baseline_memo is not None and self._baseline_artifact is not None:
            self._baseline_outputs = self.baseline_memo.get(self._baseline_artifact.key)
        if self._baseline_outputs is None:
            assert self._baseline_artifact is not None, "build the baseline first"
            session = self.load(self._baseline_artifact.path)
            try:
                self._baseline_outputs = self._outputs(session, "baseline")
            finally:
                session.close()
            if self.baseline_memo is not None:
                self.baseline_memo[self._baseline_artifact.key] = self._baseline_outputs
        return self._baseline_outputs

    def outputs_metrics(self, outputs: Outputs) -> dict[str, float]:
        data = self.eval_data()
        assert data is not None
        return compute_metrics(outputs, data.labels, self.metrics_list(), self.baseline_outputs(),
                               primary=self.primary_output, dataset=data.name)

    def baseline_metrics(self) -> dict[str, float]:
        if self._baseline_metrics is None:
            self._baseline_metrics = self.outputs_metrics(self.baseline_outputs())
        return self._baseline_metrics

    def session_metrics(self, session: Session, label: str) -> tuple[dict[str, float], Outputs]:
        outputs = self._outputs(session, label)
        return self.outputs_metrics(outputs), outputs

    def evaluate_handle(self, handle: ModelHandle) -> dict[str, float]:
        """Build ``handle`` into a throw-away artifact on this target and measure it (accuracy-aware steps)."""
        with work_dir("edgecraft-eval-") as tmp:
            work, out = Path(tmp) / "work", Path(tmp) / "artifact"
            work.mkdir()
            out.mkdir()
            self._save(handle, out, work)
            session = self.load(out)
            try:
                metrics, _ = self.session_metrics(session, "candidate")
            finally:
                session.close()
        return metrics
