"""compile(plan, target) -> CompiledPlan: bind every step to the implementation for one target.

Compilation is where a plan that cannot work fails: an unknown strategy, a step the target cannot
do, a torch-level step on an ONNX model, steps out of stage order, a missing dataset, a missing
runtime. It builds nothing and trains nothing, so CI learns of a broken plan in seconds.

The CompiledPlan is plain data; its hash (the resolved steps, the target and options, the input
model's content hash, the data the steps read, and the versions of edgecraft, the plugins and the
runtimes) keys the artifact cache. A plugin in development (an editable install) is recorded with a
hash of its source files too, so editing it without bumping its version rebuilds (see
:mod:`edgecraft.dev_cache`).
"""

from __future__ import annotations

import hashlib
import json
import platform
from importlib import metadata
from typing import Any

from edgecraft.context import CompileContext, TargetView
from edgecraft.datasets import DatasetStore
from edgecraft.errors import CompileError, EdgecraftError, InputError, PluginError
from edgecraft.model_source import ModelSourceLoader
from edgecraft.modelio import ModelIO
from edgecraft.models import Stage
from edgecraft.plan import CompressionPlan, TargetSpec
from edgecraft.plugin_checks import call_plugin, check_resolution
from edgecraft.registry import Registry
from edgecraft.strategy import ResolvedStep
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

COMPILED_SCHEMA_ID = "edgecraft.compiled/v1"
_STAGE_ORDER = {Stage.TORCH: 0, Stage.ONNX: 1, Stage.NATIVE: 2}


class CompiledPlan(BaseModel):
    """The plan for one target, fully resolved. Serializable; ``key()`` keys the artifact cache."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_id: str = Field(COMPILED_SCHEMA_ID, alias="schema")
    plan_name: str
    target_label: str
    target: str
    backend: str
    options: dict[str, Any]
    model_source: dict[str, Any]
    model_fingerprint: str
    #: The model's completed I/O (inputs with dtypes, shapes and batch axes; outputs): part of the cache key.
    io: dict[str, Any]
    steps: list[ResolvedStep]
    #: Dataset name -> content fingerprint, for the datasets the steps read.
    data_fingerprints: dict[str, str] = Field(default_factory=dict)
    #: Evaluation metrics and accuracy contracts, when steps may evaluate candidates against them.
    accuracy_terms: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, str]

    def key(self) -> str:
        payload = self.model_dump(mode="json", by_alias=True, exclude={"plan_name", "target_label"})
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    #: Keys of ``versions`` that only the steps bring (their plugins' versions), set by the compiler.
    _step_version_keys: frozenset[str] = PrivateAttr(default_factory=frozenset)

    def baseline(self) -> CompiledPlan:
        """The same target, options and model with no steps: what the compressed model is judged against.

        Without the steps' plugin versions either: the baseline runs no step, so every recipe of a plan
        (a search's trials switch steps on and off) shares one baseline artifact and one evaluation."""
        versions = {k: v for k, v in self.versions.items() if k not in self._step_version_keys}
        return self.model_copy(update={"steps": [], "data_fingerprints": {}, "accuracy_terms": {},
                                       "versions": versions})

    @property
    def model_io(self) -> ModelIO:
        return ModelIO.from_json(self.io)

    @property
    def is_baseline(self) -> bool:
        return not self.steps

    def describe(self) -> list[str]:
        lines = [f"target {self.target_label} ({self.target}, backend {self.backend}) options {self.options}"]
        source = self.model_source.get("factory") or self.model_source.get("path")
        lines.append(f"model: {self.model_source.get('kind')} {source} fingerprint {self.model_fingerprint[:12]}")
        lines.append(f"  {self.model_io.describe()}")
        for step in self.steps:
            lines.append(f"{step.where}: {step.strategy} -> {step.implementation} [stage {step.stage}]")
            for note in step.notes:
                lines.append(f"    note: {note}")
        if not self.steps:
            lines.append("(no steps: the baseline)")
        lines.append(f"cache key: {self.key()}")
        return lines


def _dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not-installed"


def _versions(registry: Registry, target: str, strategies: list[str],
              backend_runtime: dict[str, str]) -> dict[str, str]:
    from edgecraft import __version__

    versions = {"edgecraft": __version__, "python": platform.python_version(),
                "torch": _dist_version("torch"), "onnx": _dist_version("onnx")}
    provs = [registry.provenance_of_target(target)] + [registry.provenance_of_strategy(s) for s in strategies]
    for prov in provs:
        versions[f"plugin:{prov.plugin}"] = prov.cache_tag()  # + a source hash while in development
    versions.update({f"runtime:{k}": v for k, v in backend_runtime.items()})
    return versions


def find_target(plan: CompressionPlan, label: str) -> TargetSpec:
    for spec in plan.targets:
        if spec.label == label:
            return spec
    raise InputError(f"--target {label!r} is not a target of this plan; the plan's targets: "
                     f"{[t.label for t in plan.targets]}")


def compile_plan(plan: CompressionPlan, target_label: str, registry: Registry, *, loader: ModelSourceLoader,
                 datasets: DatasetStore) -> CompiledPlan:
    """Resolve every step of the bound ``plan`` for the target entry labelled ``target_label``.

    The plan's params and options are already their plugins' models (see :mod:`edgecraft.plan.binding`):
    they are read here, never validated again."""
    if not plan.is_bound:
        raise InputError("compile_plan takes a bound plan: bind a plan built in Python with "
                         "edgecraft.validate_plan(plan, registry) (load_plan and run_plan do it)")
    spec = find_target(plan, target_label)
    backend, info = registry.target(spec.target, where=f"targets[{plan.targets.index(spec)}].target")
    options = spec.options
    view = TargetView(spec.label, spec.target, backend.name, info, options,
                      emulated=backend.is_emulated(spec.target, options))
    try:
        backend.check_available(spec.target, options)
    except EdgecraftError:
        raise
    except Exception as exc:
        raise PluginError(f"backend {backend.name!r} failed while checking target {spec.target!r}: "
                          f"{type(exc).__name__}: {exc}") from exc

    if info.imports == "torch" and loader.kind != "torch":
        raise CompileError(f"model: the plan's model ({loader.params.kind}) is not a torch model, and target "
                           f"{spec.target!r} builds from the torch model itself (its backend imports torch, not ONNX: "
                           "an ONNX graph cannot feed torch.export)", target=spec.label,
                           hint="use a model source that yields a torch module: {kind: torch, factory: ...} or "
                                "{kind: huggingface, path: ...}, or an ONNX-importing target")
    resolved: list[ResolvedStep] = []
    last_stage = Stage.TORCH
    for index, step in enumerate(plan.steps):
        strategy = registry.strategy(step.strategy, where=f"steps[{index}].strategy")
        ctx = CompileContext(plan, view, index, step.label, loader.kind, loader.base_dir,
                             loader.original_copy if loader.kind == "torch" else None, loader.io(), plugins=registry)
        who = (f"{ctx.where}: strategy {step.strategy!r} from {registry.provenance_of_strategy(step.strategy)} "
               f"compiling for {spec.label!r}")
        resolution = check_resolution(call_plugin(strategy.resolve, step.params, ctx, who=who, hook="resolve()"),
                                      who=who)
        where = ctx.where
        if resolution.stage == Stage.TORCH and loader.kind != "torch":
            raise CompileError(f"works on a torch model, but the plan's model ({loader.params.kind}) is an ONNX graph",
                               step=where, target=spec.label,
                               hint="use a model source that yields a torch module: {kind: torch, factory: ...} "
                                    "or {kind: huggingface, path: ...}")
        if resolution.stage == Stage.ONNX and info.imports == "torch":
            raise CompileError(f"works on the ONNX graph ({resolution.implementation}), but target {spec.target!r} "
                               "builds from the torch model (its backend imports torch, so no ONNX graph is made)",
                               step=where, target=spec.label,
                               hint="drop this step for this target, or use a torch-stage strategy")
        if resolution.stage == Stage.NATIVE and info.native_format is None:
            raise CompileError(f"needs the backend's native model, which target {spec.target!r} does not expose",
                               step=where, target=spec.label)
        if _STAGE_ORDER[resolution.stage] < _STAGE_ORDER[last_stage]:
            raise CompileError(f"works at the {resolution.stage} stage but follows a {last_stage}-stage step; "
                               "order steps torch-level first, then graph-level (onnx), then native",
                               step=where, target=spec.label)
        last_stage = resolution.stage
        for name in resolution.needs_data:
            if name not in plan.data:
                raise CompileError(f"needs dataset {name!r}, which is not in the plan's data "
                                   f"(defined: {sorted(plan.data) or 'none'})", step=where, target=spec.label)
        resolved.append(ResolvedStep(
            index=index, label=step.label, strategy=step.strategy, stage=resolution.stage,
            implementation=resolution.implementation, params=resolution.params.model_dump(mode="json"),
            needs_data=list(resolution.needs_data), notes=list(resolution.notes)))

    data_names = sorted({n for s in resolved for n in s.needs_data})
    accuracy_terms: dict[str, Any] = {}
    if resolved and plan.evaluation.dataset is not None:
        # Steps may evaluate candidates (accuracy-aware loops), so their result depends on the
        # evaluation data and the accuracy contracts too: both belong in the cache key.
        data_names = sorted({*data_names, plan.evaluation.dataset})
        accuracy_terms = {"metrics": plan.evaluation.metrics, "contracts": [
            c.model_dump(mode="json") for c in plan.contracts_for(spec.label) if c.kind == "accuracy"]}
    fingerprints = {name: datasets.get(name).fingerprint() for name in data_names}
    try:
        runtime = backend.runtime_versions()
    except Exception as exc:
        raise PluginError(f"backend {backend.name!r} failed to report runtime versions: {exc}") from exc
    compiled = CompiledPlan(
        plan_name=plan.name, target_label=spec.label, target=spec.target, backend=backend.name,
        options=options.model_dump(mode="json"), model_source=plan.model.model_dump(mode="json"),
        model_fingerprint=loader.fingerprint(), io=loader.io().to_json(), steps=resolved,
        data_fingerprints=fingerprints, accuracy_terms=accuracy_terms,
        versions=_versions(registry, spec.target, [s.strategy for s in resolved], runtime))
    compiled._step_version_keys = frozenset(
        {f"plugin:{registry.provenance_of_strategy(s.strategy).plugin}" for s in resolved}
        - {f"plugin:{registry.provenance_of_target(spec.target).plugin}"})
    return compiled

