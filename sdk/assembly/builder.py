"""Build artifacts for one target: model source → torch steps → ONNX → graph steps → native steps → backend files
(a target that imports torch models: model source → torch steps → backend files, no ONNX).

A :class:`Builder` turns a compiled plan into an artifact in the cache and does nothing else: it
never evaluates or times a model. Steps that need measurements on the target (accuracy-aware loops)
get them from the :class:`~edgecraft.context.Evaluator` the builder was handed, through their
run context. Each artifact is built in a temporary folder and moved into the cache only when
complete (see :mod:`edgecraft.assembly.artifacts`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecraft.assembly.artifact_io import ArtifactIO
from edgecraft.assembly.artifacts import Artifact, ArtifactCache, write_manifest
from edgecraft.assembly.cache_verify import work_dir
from edgecraft.compile.compiler import CompiledPlan
from edgecraft.context import Evaluator, RunContext, TargetView
from edgecraft.datasets import DatasetStore
from edgecraft.logging_setup import third_party_output
from edgecraft.model_source import UNCACHED_PREFIX, ModelSourceLoader
from edgecraft.models import ModelHandle, NativeModel, OnnxModel, Stage, TorchModel
from edgecraft.plan import CompressionPlan
from edgecraft.plugin_checks import call_plugin, check_step_result
from edgecraft.progress import NullProgress, Progress
from edgecraft.registry import Registry
from edgecraft.strategy import ResolvedStep

#: Called with (builder, torch model, torch key) once every torch-stage step of a build is done, before
#: export, graph steps and timing. A search stops hopeless trials here by raising (see edgecraft.search).
TorchStageDone = Callable[["Builder", TorchModel, str], None]


@dataclass
class Builder:
    plan: CompressionPlan
    registry: Registry
    view: TargetView
    loader: ModelSourceLoader
    datasets: DatasetStore
    cache: ArtifactCache
    artifact_io: ArtifactIO
    progress: Progress = field(default_factory=NullProgress)
    #: What steps measure candidates with (None: the plan has no evaluation dataset).
    evaluator: Evaluator | None = None
    #: Torch-stage results keyed by what determines them (model, resolved torch steps, their data).
    #: Shared by the targets of one run, so pruning or distillation trains once, not once per target.
    #: Torch-stage steps must therefore not depend on the target except through their resolved params.
    torch_memo: dict[str, tuple[TorchModel, list[dict[str, Any]]]] = field(default_factory=dict)
    torch_stage_done: TorchStageDone | None = None
    #: The baseline artifact once built (a search's stopped trial reads its size).
    baseline: Artifact | None = None

    @property
    def baseline_size_bytes(self) -> int | None:
        """The baseline artifact's size once it is built."""
        return self.baseline.size_bytes if self.baseline is not None else None

    def baseline_artifact(self, compiled: CompiledPlan) -> tuple[Artifact, bool]:
        """The plan's model with no steps on this target (the reference every candidate is measured against)."""
        artifact, cached = self.build(compiled.baseline())
        self.baseline = artifact
        return artifact, cached

    # ------------------------------------------------------------------ steps
    def _run_context(self, step: ResolvedStep, work: Path) -> RunContext:
        return RunContext(plan=self.plan, target=self.view, backend=self.artifact_io.backend, step=step,
                          work_dir=work, datasets=self.datasets, seed=self.plan.seed, io=self.loader.io(),
                          base_dir=self.loader.base_dir, progress=self.progress, source=self.loader,
                          evaluator=self.evaluator, plugins=self.registry)

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
                handle = self.artifact_io.to_onnx(handle, work)
            elif step.stage == Stage.NATIVE and not isinstance(handle, NativeModel):
                handle = self.artifact_io.to_native(handle, work)
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
                if not self.artifact_io.imports_torch:  # a torch-importing backend takes the module itself
                    handle = self.artifact_io.to_onnx(handle, work)
            exported = [entry["export"] for entry in handle.lineage if "export" in entry]
            if exported:  # which exporter ran ('auto' may fall back), with which attention; graph steps keep it
                extra["export"] = exported[-1]
            if isinstance(handle, OnnxModel):
                # The graph the backend imported: portable, and enough to rebuild any step's result.
                shutil.copyfile(handle.path, lineage / "model.onnx")
            files = self.artifact_io.save(handle, out, work)
            size = self.artifact_io.size(files)
            manifest = write_manifest(out, key=key, compiled=compiled.model_dump(mode="json", by_alias=True),
                                      files=files, size_bytes=size, steps=details, extra=extra)
        if rejected is None and compiled.model_fingerprint.startswith(UNCACHED_PREFIX):
            rejected = "not cached: " + compiled.model_fingerprint.partition(": ")[2]  # the report says why
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
            module = handle.module
            module.eval()  # its return value is None for a PT2E-quantized GraphModule (torchao's eval switch)
            program = torch.export.export(module, example, dynamic_shapes=shapes)
            torch.export.save(program, str(lineage / "torch_model.pt2"))
        except Exception as exc:  # the ONNX graph still carries the model; note why the program is missing
            return f"not saved: {type(exc).__name__}: {exc}"
        return "lineage/torch_model.pt2"
