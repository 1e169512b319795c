"""The conformance checks of a strategy: its params model, and on every available target and kit model,
``resolve()`` (deterministic, or a clean refusal), ``apply()`` (a valid step result that builds, loads and
runs on the target) and the artifact cache (a second identical run hits it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from edgecraft.errors import CompileError, EdgecraftError, InputError, PluginError
from edgecraft.testing.apply_probe import graph_outputs, probing
from edgecraft.testing.findings import ConformanceReport, attempt, plugin_message, raised


class StrategyCheck:
    def __init__(self, registry: Any, name: str, params: dict[str, Any], targets: Iterable[str] | None,
                 options: Mapping[str, Mapping[str, Any]], work: Path) -> None:
        self.registry, self.name, self.params, self.work = registry, name, params, work
        self.requested = list(targets) if targets is not None else None
        self.options = options
        self._noted_others = False
        provided = registry.strategies[name]
        self.cls = provided.obj
        self.report = ConformanceReport("strategy", name, str(provided.provenance))

    def run(self) -> ConformanceReport:
        if self._check_params():
            for model in _kit_models():
                self._check_model(model)
        if not any(f.method == "apply()" and f.outcome == "ok" for f in self.report.findings) and self.report.ok:
            self.report.add("note", "apply()", "never exercised: no target accepted the step (pass params with "
                            "--params, or name a target with --target)")
        return self.report

    # ---------------------------------------------------------------- params
    def _check_params(self) -> bool:
        from edgecraft.plan.schema import plan_json_schema
        from edgecraft.strategy import StrategyParams
        from pydantic import ValidationError

        r, model = self.report, getattr(self.cls, "params_model", None)
        if not (isinstance(model, type) and issubclass(model, StrategyParams)):
            r.add("violation", "params_model", f"is {model!r}; expected a subclass of edgecraft.StrategyParams")
            return False
        if model.model_config.get("extra") != "forbid":
            r.add("violation", "params_model", "accepts unknown keys; expected extra='forbid' (subclass "
                  "StrategyParams and do not override model_config['extra']) so a misspelled param is a plan error")
        else:
            r.add("ok", "params_model", "strict: an unknown param is refused")
        try:
            instance = model.model_validate(self.params)
        except ValidationError as exc:
            r.add("violation", "params_model", f"params {self.params} do not validate ({exc.error_count()} "
                  "error(s)); expected defaults for every field, or pass the kit valid params (--params JSON)")
            return False
        try:
            json.dumps(instance.model_dump(mode="json"))
        except (TypeError, ValueError) as exc:
            r.add("violation", "params_model", f"model_dump(mode='json') is not JSON ({exc}); params are part of "
                  "the compiled plan and its cache key")
        schema = json.dumps(plan_json_schema(self.registry))
        if f'"const": "{self.name}"' in schema:
            r.add("ok", "params_model", "in `edgecraft schema` (editors validate and complete it)")
        else:
            r.add("violation", "params_model", "missing from `edgecraft schema`; expected a step variant for it")
        return True

    # ---------------------------------------------------------------- per model and target
    def _targets(self) -> list[str]:
        """The built-in targets by default: a broken third-party backend installed beside the strategy must not
        fail the strategy's check (name other targets with ``targets=``/``--target`` to include them)."""
        names = sorted(self.registry.targets)
        if self.requested is None:
            builtin = [n for n in names if self.registry.targets[n].provenance.distribution == "edgecraft"]
            others = sorted(set(names) - set(builtin))
            if others and not self._noted_others:
                self._noted_others = True
                self.report.add("note", "targets", f"checked on the built-in targets only; name others with "
                                f"--target to include them: {', '.join(others)}")
            return builtin
        for name in self.requested:
            self.registry.target(name)  # unknown: InputError listing what is installed
        return list(self.requested)

    def _plan(self, model: Any, folder: Path, targets: list[str]) -> Any:
        from edgecraft.plan.loading import validate_plan
        from edgecraft.testing.harness import kit_plan

        data = kit_plan(self.name, self.params, model, folder, targets, self.options)
        return validate_plan(data, self.registry, source=f"conformance plan ({model.name} model)")

    def _check_model(self, model: Any) -> None:
        from edgecraft.assembly.artifacts import ArtifactCache
        from edgecraft.compile.checks import prepare

        folder = self.work / model.name
        folder.mkdir()
        targets = self._targets()
        try:
            plan = self._plan(model, folder, targets)
            run = prepare(plan, self.registry, folder)
        except PluginError as exc:
            self.report.add("violation", "params_model", f"the kit's plan was refused: {exc.message}")
            return
        cache = ArtifactCache(folder / "cache")
        for target in targets:
            self._check_target(run, model, target, cache)

    def _check_target(self, run: Any, model: Any, target: str, cache: Any) -> None:
        from edgecraft.compile.compiler import compile_plan

        r, where = self.report, f"on {target} ({model.name} model)"
        backend, _ = self.registry.target(target)
        owner = self.registry.targets[target].provenance
        if owner.distribution != "edgecraft":  # a failure there may be the backend's: name it
            where = f"on {target} ({model.name} model; target of backend {backend.name!r} from {owner})"
        spec = next(t for t in run.plan.targets if t.label == target)
        try:
            options = spec.options  # the bound plan's: already the target's options model
            backend.check_available(target, options)
        except EdgecraftError as exc:
            r.add("skipped", "resolve()", f"{where}: target not available here: {exc.message}")
            return
        except Exception as exc:
            r.add("skipped", "resolve()", f"{where}: target not available here: {type(exc).__name__}: {exc}")
            return
        def compile_once() -> Any:
            return compile_plan(run.plan, target, self.registry, loader=run.loader, datasets=run.datasets)

        resolved, compiled = attempt(r, "resolve()", where, compile_once, (
            (CompileError, "refused", lambda e: e.message),
            (PluginError, "violation", lambda e: plugin_message(e, "resolve()")),
            (InputError, "refused", lambda e: "refused with InputError (prefer ctx.error(...), a CompileError "
                                              f"naming the step and target): {e.message}"),
            # the compiler wraps plugin faults; anything else is still the plugin's step
            (Exception, "violation", lambda e: f"{raised(e)}; expected a Resolution or ctx.error(...)")))
        if not resolved:
            return
        r.add("ok", "resolve()", f"{where}: accepted: {compiled.steps[0].implementation} "
              f"[stage {compiled.steps[0].stage}]")
        resolved, again = attempt(r, "resolve()", where, compile_once, (
            (Exception, "violation", lambda e: f"a second compile of the same plan {raised(e)}; expected the same "
                                               "Resolution"),))
        if not resolved:
            return
        if again.key() != compiled.key():
            r.add("violation", "resolve()", f"{where}: two compiles of the same plan differ "
                  f"({compiled.steps[0].params} vs {again.steps[0].params}); expected a deterministic Resolution "
                  "(the cache key is built from it, so the cache would never hit)")
            return
        view_emulated = backend.is_emulated(target, options)
        if view_emulated and (self.requested is None or target not in self.requested):
            r.add("skipped", "apply()", f"{where}: emulated device; name it with --target to build on it")
            return
        self._check_apply(run, model, compiled, cache, where)

    def _check_apply(self, run: Any, model: Any, compiled: Any, cache: Any, where: str) -> None:
        from edgecraft.execute.target import TargetServices
        from edgecraft.progress import NullProgress

        r = self.report
        # torch-stage results are not shared between targets here: apply() is checked on each of them
        services = TargetServices.of(dataclasses.replace(run, torch_memo={}), compiled, cache, NullProgress())

        def build() -> Any:
            (baseline, _), (artifact, _cached) = services.build(compiled)  # accuracy-aware steps need the baseline
            return baseline, artifact

        with probing(self.registry, self.name) as calls:
            built, artifacts = attempt(r, "apply()", where, build, (
                (PluginError, "violation", lambda e: plugin_message(e, "apply()")),
                (InputError, "refused", lambda e: f"refused at run time with {type(e).__name__}: {e.message}"),
                (EdgecraftError, "violation", lambda e: "the model it returned did not build on the target: "
                                                        f"{type(e).__name__}: {e.message}"),
                (Exception, "violation", lambda e: f"the build failed: {type(e).__name__}: {e}")))
        if not built:
            return
        baseline, artifact = artifacts
        broken = [p for call in calls for p in call.problems] + _changed_outputs(baseline.path, artifact.path)
        for problem in broken:
            r.add("violation", "apply()", f"{where}: {problem}")
        if broken:
            return
        details = [s for s in artifact.manifest.get("steps", []) if s.get("strategy") == self.name]
        r.add("ok", "apply()", f"{where}: returned a valid StepResult; details are JSON "
              f"({', '.join(sorted(k for k in (details[0] if details else {}) if k not in _STEP_KEYS)) or 'none'})")
        self._check_loads(services.artifact_io, model, artifact, where, baseline)
        rebuilt, result = attempt(r, "cache", where, lambda: services.builder.build(compiled), (
            (Exception, "violation", lambda e: f"a second identical build {raised(e)}"),))
        if not rebuilt:
            return
        again, hit = result
        if hit and again.path == artifact.path:
            r.add("ok", "cache", f"{where}: a second identical run hits the cache")
        else:
            r.add("violation", "cache", f"{where}: a second identical run rebuilt the artifact "
                  f"({cache.rejected.get(compiled.key(), 'no cache hit')}); expected a cache hit")

    def _check_loads(self, artifact_io: Any, model: Any, artifact: Any, where: str, baseline: Any) -> None:
        r = self.report
        feeds = model.feeds(4)
        try:
            reference = artifact_io.load(baseline.path)
            try:
                expected = [np.shape(o) for o in reference.run({k: v for k, v in feeds.items()
                                                                 if k in reference.input_names})]
            finally:
                reference.close()
        except Exception:  # the baseline is the backend's: `plugin check BACKEND` reports it
            expected = None
        try:
            session = artifact_io.load(artifact.path)
        except Exception as exc:
            r.add("violation", "apply()", f"{where}: the artifact built from its model does not load on the target: "
                  f"{exc}")
            return
        try:
            outputs = session.run({k: v for k, v in feeds.items() if k in session.input_names})
            if not outputs or any(not np.all(np.isfinite(np.asarray(o, dtype=np.float64))) for o in outputs):
                r.add("violation", "apply()", f"{where}: the model it returned runs but gives no or non-finite "
                      "outputs on the kit's inputs")
            elif expected is not None and [np.shape(o) for o in outputs] != expected:
                r.add("violation", "apply()", f"{where}: its model's outputs have shapes "
                      f"{[tuple(np.shape(o)) for o in outputs]}; expected the original model's {expected}")
            else:
                r.add("ok", "apply()", f"{where}: its model loads and runs on the target "
                      f"(outputs {[tuple(np.shape(o)) for o in outputs]})")
        except Exception as exc:
            r.add("violation", "apply()", f"{where}: the model it returned fails to run on the target: "
                  f"{type(exc).__name__}: {exc}")
        finally:
            with contextlib.suppress(Exception):  # the backend's fault, reported by `plugin check BACKEND`
                session.close()


def _changed_outputs(baseline: Path, artifact: Path) -> list[str]:
    """The graph the backend imported has the original model's outputs (names and shapes), when both are ONNX."""
    before, after = (graph_outputs(Path(p) / "lineage" / "model.onnx") for p in (baseline, artifact))
    if before is None or after is None or before == after:
        return []
    return [f"its model's outputs are {after} (name, shape); expected the original model's {before}"]


_STEP_KEYS = {"index", "label", "strategy", "implementation"}


def _kit_models() -> tuple[Any, ...]:
    from edgecraft.testing.models import KIT_MODELS

    return KIT_MODELS
