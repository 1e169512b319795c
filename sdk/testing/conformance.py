"""The conformance kit: does an installed strategy or backend keep the contract edgecraft relies on?

``edgecraft plugin check NAME`` and :func:`check_plugin` (for a plugin's own pytest suite) run the same
checks. They use the real machinery a plan run uses (the registry, the plan validator, the compiler,
the build pipeline with its return-value checks from :mod:`edgecraft.plugin_checks`, the artifact
cache), on the tiny bundled models of :mod:`edgecraft.testing.models`, so "conforms" means "a plan
using it will not fail because of it".

A **violation** is a broken promise, named by the method and what was expected (one line each); a
**refusal** (a ``CompileError`` from ``resolve``, an ``InputError`` for a model the plugin does not
handle) is a clean answer, not a violation; a **skip** is a check that could not run here (a target
whose runtime is not installed, an emulated device not named with ``--target``).
"""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from edgecraft.errors import CompileError, EdgecraftError, InputError, PluginError

Outcome = Literal["ok", "violation", "refused", "skipped", "note"]


@dataclass(frozen=True)
class Finding:
    outcome: Outcome
    #: The method or aspect checked, e.g. ``apply()`` or ``params_model``.
    method: str
    message: str

    def line(self, plugin: str) -> str:
        tag = {"ok": "ok", "violation": "FAIL", "refused": "refused", "skipped": "skip", "note": "note"}[self.outcome]
        return f"{tag:7} {plugin}: {self.method}: {self.message}"


@dataclass
class ConformanceReport:
    """What :func:`check_plugin` found; ``ok`` when there is no violation."""

    kind: Literal["strategy", "backend"]
    name: str
    distribution: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def violations(self) -> list[Finding]:
        return [f for f in self.findings if f.outcome == "violation"]

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name!r}"

    def add(self, outcome: Outcome, method: str, message: str) -> None:
        self.findings.append(Finding(outcome, method, _one_line(message)))

    def lines(self, *, verbose: bool = True) -> list[str]:
        shown = self.findings if verbose else self.violations
        return [f.line(self.label) for f in shown]

    def summary(self) -> str:
        checks = sum(1 for f in self.findings if f.outcome == "ok")
        if self.ok:
            return f"{self.label} from {self.distribution} conforms ({checks} checks passed)"
        return (f"{self.label} from {self.distribution} does not conform: {len(self.violations)} violation(s), "
                f"{checks} checks passed")


class ConformanceError(AssertionError):
    """Raised by :func:`assert_conforms`; its message lists every violation, one per line."""


def _plugin_message(exc: PluginError, hook: str) -> str:
    """A PluginError's message without the long "steps[0] (x): strategy 'x' from dist on target 't':" prefix
    (the finding's line names the plugin, method and target already)."""
    cut = exc.message.find(f": {hook}")
    return exc.message[cut + 2:] if cut >= 0 else exc.message


def _one_line(text: object) -> str:
    from edgecraft.safe_text import clean_text

    return clean_text(str(text), keep_newlines=False).replace("\n", " ")[:600]


#: One rung of an error ladder: an exception type, the finding it becomes, and its message.
Rung = tuple[type[BaseException], Outcome, Callable[[Any], str]]


def _raised(exc: BaseException) -> str:
    return f"raised {type(exc).__name__}: {exc}"


#: Any exception from the plugin is a violation, reported as what it raised.
RAISED: tuple[Rung, ...] = ((Exception, "violation", _raised),)


def _attempt(report: ConformanceReport, method: str, where: str, call: Callable[[], Any],
             ladder: tuple[Rung, ...] = RAISED) -> tuple[bool, Any]:
    """Run one plugin call; an exception becomes the finding of the first rung it matches.

    Every check of the kit has the same shape (call the plugin, classify what it raised as a violation,
    a refusal or a skip, stop that check); the ladder is the only part that differs. Returns
    ``(True, value)`` or ``(False, None)`` after recording the finding; unmatched exceptions propagate.
    """
    try:
        return True, call()
    except Exception as exc:
        for kind, outcome, message in ladder:
            if isinstance(exc, kind):
                report.add(outcome, method, f"{where}: {message(exc)}")
                return False, None
        raise


# ---------------------------------------------------------------------------- entry points
def check_plugin(name: str, *, kind: Literal["strategy", "backend"] | None = None,
                 params: Mapping[str, Any] | None = None, targets: Iterable[str] | None = None,
                 options: Mapping[str, Mapping[str, Any]] | None = None, tolerance: float = 1e-3,
                 registry: Any = None, plugins: Iterable[Any] = (), work_dir: Path | None = None) -> ConformanceReport:
    """Run the conformance suite on the installed strategy or backend ``name``.

    ``params``: the strategy's params for the kit's plans (default ``{}``: its defaults). The kit's
    plans define one dataset, ``kit`` (every model input plus labels), for params that name one.
    ``targets``: restrict to these targets (default: every installed one; emulated targets only when
    named). ``options``: target name -> options. ``tolerance``: a backend's outputs may differ from
    onnxruntime's by this much (absolute, and relative to the output's scale). ``plugins``: plugin
    objects (modules) registered besides the installed entry points, for testing a plugin in-process.
    """
    from edgecraft.registry import build_registry

    registry = registry or build_registry(extra_plugins=list(plugins))
    if kind is None:
        if name in registry.strategies:
            kind = "strategy"
        elif name in registry.backends:
            kind = "backend"
        elif name in registry.targets:
            name, kind = registry.targets[name].obj[0], "backend"
        else:
            registry.blame_broken("strategy or backend", name)
            raise InputError(f"no installed strategy or backend is named {name!r}; strategies: "
                             f"{', '.join(sorted(registry.strategies)) or 'none'}; backends: "
                             f"{', '.join(sorted(registry.backends)) or 'none'}",
                             hint="`edgecraft plugins` lists what is installed; is your package installed "
                                  "(pip install -e .) and its entry point in the `edgecraft` group?")
    with tempfile.TemporaryDirectory(prefix="edgecraft-check-", dir=work_dir) as tmp:
        if kind == "strategy":
            if name not in registry.strategies:
                registry.blame_broken("strategy", name)
                raise InputError(f"no installed strategy is named {name!r}")
            return StrategyCheck(registry, name, dict(params or {}), targets, options or {}, Path(tmp)).run()
        if name not in registry.backends:
            registry.blame_broken("backend", name)
            raise InputError(f"no installed backend is named {name!r}")
        return BackendCheck(registry, name, targets, options or {}, tolerance, Path(tmp)).run()


def assert_conforms(name: str, **kwargs: Any) -> ConformanceReport:
    """:func:`check_plugin`, raising :class:`ConformanceError` (an AssertionError) listing each violation.

    For a plugin's own tests::

        def test_conforms():
            edgecraft.testing.assert_conforms("my-strategy")
    """
    report = check_plugin(name, **kwargs)
    if not report.ok:
        raise ConformanceError("\n".join([report.summary(), *report.lines(verbose=False)]))
    return report


# ---------------------------------------------------------------------------- strategies
class StrategyCheck:
    def __init__(self, registry: Any, name: str, params: dict[str, Any], targets: Iterable[str] | None,
                 options: Mapping[str, Mapping[str, Any]], work: Path) -> None:
        self.registry, self.name, self.params, self.work = registry, name, params, work
        self.requested = list(targets) if targets is not None else None
        self.options = options
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
        names = sorted(self.registry.targets)
        if self.requested is None:
            return names
        for name in self.requested:
            self.registry.target(name)  # unknown: InputError listing what is installed
        return list(self.requested)

    def _plan(self, model: Any, folder: Path, targets: list[str]) -> Any:
        from edgecraft.plan.loading import validate_plan

        model.write_dataset(folder / "kit.npz")
        data = {"name": f"conformance-{self.name}-{model.name}", "model": dict(model.source),
                "data": {"kit": {"kind": "npz", "path": "kit.npz"}},
                "evaluation": {"dataset": "kit", "metrics": ["top1"], "batch_size": 8},
                "latency": {"warmup": 0, "repeats": 5, "rounds": 1, "threads": 1},
                "steps": [{"strategy": self.name, "params": self.params}],
                "targets": [{"target": t, "options": dict(self.options.get(t, {}))} for t in targets]}
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
        backend, info = self.registry.target(target)
        spec = next(t for t in run.plan.targets if t.label == target)
        try:
            options = info.options_model.model_validate(spec.options if isinstance(spec.options, dict)
                                                        else spec.options.model_dump())
            backend.check_available(target, options)
        except EdgecraftError as exc:
            r.add("skipped", "resolve()", f"{where}: target not available here: {exc.message}")
            return
        except Exception as exc:
            r.add("skipped", "resolve()", f"{where}: target not available here: {type(exc).__name__}: {exc}")
            return
        def compile_once() -> Any:
            return compile_plan(run.plan, target, self.registry, loader=run.loader, datasets=run.datasets)

        resolved, compiled = _attempt(r, "resolve()", where, compile_once, (
            (CompileError, "refused", lambda e: e.message),
            (PluginError, "violation", lambda e: _plugin_message(e, "resolve()")),
            (InputError, "refused", lambda e: "refused with InputError (prefer ctx.error(...), a CompileError "
                                              f"naming the step and target): {e.message}"),
            # the compiler wraps plugin faults; anything else is still the plugin's step
            (Exception, "violation", lambda e: f"{_raised(e)}; expected a Resolution or ctx.error(...)")))
        if not resolved:
            return
        r.add("ok", "resolve()", f"{where}: accepted: {compiled.steps[0].implementation} "
              f"[stage {compiled.steps[0].stage}]")
        resolved, again = _attempt(r, "resolve()", where, compile_once, (
            (Exception, "violation", lambda e: f"a second compile of the same plan {_raised(e)}; expected the same "
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
        from edgecraft.assembly.pipeline import TargetPipeline
        from edgecraft.compile.checks import target_view

        r = self.report
        view = target_view(run.plan, self.registry, compiled)
        pipe = TargetPipeline(run.plan, self.registry, view, run.loader, run.datasets, cache)
        def build() -> Any:
            pipe.baseline_artifact(compiled)  # accuracy-aware steps compare against the baseline
            return pipe.build(compiled)[0]

        built, artifact = _attempt(r, "apply()", where, build, (
            (PluginError, "violation", lambda e: _plugin_message(e, "apply()")),
            (InputError, "refused", lambda e: f"refused at run time with {type(e).__name__}: {e.message}"),
            (EdgecraftError, "violation", lambda e: "the model it returned did not build on the target: "
                                                    f"{type(e).__name__}: {e.message}"),
            (Exception, "violation", lambda e: f"the build failed: {type(e).__name__}: {e}")))
        if not built:
            return
        details = [s for s in artifact.manifest.get("steps", []) if s.get("strategy") == self.name]
        r.add("ok", "apply()", f"{where}: returned a valid StepResult; details are JSON "
              f"({', '.join(sorted(k for k in (details[0] if details else {}) if k not in _STEP_KEYS)) or 'none'})")
        self._check_loads(pipe, model, artifact, where)
        rebuilt, result = _attempt(r, "cache", where, lambda: pipe.build(compiled), (
            (Exception, "violation", lambda e: f"a second identical build {_raised(e)}"),))
        if not rebuilt:
            return
        again, hit = result
        if hit and again.path == artifact.path:
            r.add("ok", "cache", f"{where}: a second identical run hits the cache")
        else:
            r.add("violation", "cache", f"{where}: a second identical run rebuilt the artifact "
                  f"({cache.rejected.get(compiled.key(), 'no cache hit')}); expected a cache hit")

    def _check_loads(self, pipe: Any, model: Any, artifact: Any, where: str) -> None:
        r = self.report
        try:
            session = pipe.load(artifact.path)
        except Exception as exc:
            r.add("violation", "apply()", f"{where}: the artifact built from its model does not load on the target: "
                  f"{exc}")
            return
        try:
            feeds = model.feeds(4)
            outputs = session.run({k: v for k, v in feeds.items() if k in session.input_names})
            if not outputs or any(not np.all(np.isfinite(np.asarray(o, dtype=np.float64))) for o in outputs):
                r.add("violation", "apply()", f"{where}: the model it returned runs but gives no or non-finite "
                      "outputs on the kit's inputs")
            else:
                r.add("ok", "apply()", f"{where}: its model loads and runs on the target "
                      f"(outputs {[tuple(np.shape(o)) for o in outputs]})")
        except Exception as exc:
            r.add("violation", "apply()", f"{where}: the model it returned fails to run on the target: "
                  f"{type(exc).__name__}: {exc}")
        finally:
            with contextlib.suppress(Exception):  # the backend's fault, reported by `plugin check BACKEND`
                session.close()


_STEP_KEYS = {"index", "label", "strategy", "implementation"}


def _kit_models() -> tuple[Any, ...]:
    from edgecraft.testing.models import KIT_MODELS

    return KIT_MODELS


# ---------------------------------------------------------------------------- backends
#: A PluginError already says what the backend broke (edgecraft.plugin_checks); anything else, what it raised.
_PLUGIN_MESSAGE_OR_RAISED: tuple[Rung, ...] = ((PluginError, "violation", lambda e: e.message), *RAISED)


class BackendCheck:
    def __init__(self, registry: Any, name: str, targets: Iterable[str] | None,
                 options: Mapping[str, Mapping[str, Any]], tolerance: float, work: Path) -> None:
        self.registry, self.name, self.tolerance, self.work = registry, name, tolerance, work
        self.requested = list(targets) if targets is not None else None
        self.options = options
        provided = registry.backends[name]
        self.report = ConformanceReport("backend", name, str(provided.provenance))
        self.backend = registry.backend(name)

    def run(self) -> ConformanceReport:
        from edgecraft.backend import TargetInfo, TargetOptions

        r = self.report
        try:
            infos = self.backend.targets()
        except Exception as exc:
            r.add("violation", "targets()", f"raised {type(exc).__name__}: {exc}; expected a list of TargetInfo")
            return r
        if not isinstance(infos, list) or not infos or not all(isinstance(i, TargetInfo) for i in infos):
            r.add("violation", "targets()", f"returned {infos!r}; expected a non-empty list of edgecraft.TargetInfo")
            return r
        for info in infos:
            problems = []
            if not (isinstance(info.options_model, type) and issubclass(info.options_model, TargetOptions)):
                problems.append("options_model must subclass edgecraft.TargetOptions")
            elif info.options_model.model_config.get("extra") != "forbid":
                problems.append("options_model must refuse unknown keys (extra='forbid')")
            if not isinstance(info.capabilities, frozenset) or not all(isinstance(c, str) for c in info.capabilities):
                problems.append("capabilities must be a frozenset of str tags")
            if problems:
                r.add("violation", "targets()", f"target {info.name!r}: " + "; ".join(problems))
            else:
                r.add("ok", "targets()", f"target {info.name!r}: strict options, capabilities "
                      f"{sorted(info.capabilities) or 'none'}, native_format {info.native_format!r}")
        try:
            versions = self.backend.runtime_versions()
            if not isinstance(versions, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                         for k, v in versions.items()):
                r.add("violation", "runtime_versions()", f"returned {versions!r}; expected dict[str, str] (it is "
                      "part of the cache key)")
            else:
                r.add("ok", "runtime_versions()", f"{versions or '{}'}")
        except Exception as exc:
            r.add("violation", "runtime_versions()", f"raised {type(exc).__name__}: {exc}")
        names = [i.name for i in infos]
        for name in self.requested or names:
            if name not in names:
                raise InputError(f"--target {name!r} is not a target of backend {self.name!r} (its targets: {names})")
        for info in infos:
            if self.requested is not None and info.name not in self.requested:
                continue
            self._check_target(info)
        return r

    def _check_target(self, info: Any) -> None:
        from edgecraft.testing.models import ONNX_BUILDERS

        r, target = self.report, info.name
        try:
            options = info.options_model.model_validate(dict(self.options.get(target, {})))
        except Exception as exc:
            r.add("violation", "targets()", f"target {target!r}: options_model() with the kit's options does not "
                  f"validate ({exc}); expected defaults for every option, or pass --option")
            return
        try:
            emulated = self.backend.is_emulated(target, options)
        except Exception as exc:
            r.add("violation", "is_emulated()", f"target {target!r}: raised {type(exc).__name__}: {exc}")
            return
        if emulated and self.requested is None:
            r.add("skipped", "load()", f"target {target!r}: emulated device; name it with --target to check it")
            return
        try:
            self.backend.check_available(target, options)
        except EdgecraftError as exc:
            r.add("skipped", "check_available()", f"target {target!r}: not available here: {exc.message}")
            return
        except Exception as exc:
            r.add("violation", "check_available()", f"target {target!r}: raised {type(exc).__name__}: {exc}; "
                  "expected None, or InputError with an install hint")
            return
        for model_name, (build, kit_model) in ONNX_BUILDERS.items():
            self._round_trip(info, options, model_name, build, kit_model)

    def _round_trip(self, info: Any, options: Any, model_name: str, build: Any, kit_model: Any) -> None:
        from edgecraft.plugin_checks import check_saved_files, check_session

        r, target = self.report, info.name
        where = f"target {target!r} ({model_name} model)"
        folder = self.work / f"{target}-{model_name}"
        work, out = folder / "work", folder / "artifact"
        work.mkdir(parents=True)
        out.mkdir()
        onnx_path = build(folder / "model.onnx")
        who = f"backend {self.name!r}"
        imported, native = _attempt(r, "import_onnx()", where,
                                    lambda: self.backend.import_onnx(onnx_path, target, options, work))
        if not imported:
            return
        saved, files = _attempt(r, "save()", where, lambda: check_saved_files(
            self.backend.save(native, target, options, out), out, who=who), _PLUGIN_MESSAGE_OR_RAISED)
        if not saved:
            return
        sized, size = _attempt(r, "artifact_size()", where, lambda: self.backend.artifact_size(files))
        if sized and (not isinstance(size, int) or size <= 0):
            r.add("violation", "artifact_size()", f"{where}: returned {size!r}; expected a positive int (bytes)")
        r.add("ok", "import_onnx()/save()", f"{where}: wrote {[f.name for f in files]}")
        feeds = kit_model.feeds(4)
        expected = _onnxruntime_outputs(onnx_path, feeds)
        loaded, session = _attempt(r, "load()", where, lambda: check_session(
            self.backend.load(out, target, options, 1), who=who), _PLUGIN_MESSAGE_OR_RAISED)
        if not loaded:
            return
        try:
            self._check_session(session, where, feeds, expected)
        finally:
            try:
                session.close()
                r.add("ok", "close()", f"{where}: released")
            except Exception as exc:
                r.add("violation", "close()", f"{where}: raised {type(exc).__name__}: {exc}; expected it to release "
                      "the runtime's resources quietly")
        try:  # released means reloadable: a server port, a device or a file lock must be free again
            check_session(self.backend.load(out, target, options, 1), who=who).close()
        except Exception as exc:
            r.add("violation", "close()", f"{where}: the artifact does not load again after close(): "
                  f"{type(exc).__name__}: {exc}; expected close() to release what load() took")

    def _check_session(self, session: Any, where: str, feeds: dict[str, np.ndarray],
                       expected: list[np.ndarray]) -> None:
        r = self.report
        named, names = _attempt(r, "Session.input_names", where, lambda: list(session.input_names))
        if not named:
            return
        if sorted(names) != sorted(feeds):
            r.add("violation", "Session.input_names", f"{where}: is {names}; expected the model's inputs "
                  f"{list(feeds)} (in the model's order)")
            return
        r.add("ok", "Session.input_names", f"{where}: {names}")
        ran, outputs = _attempt(r, "Session.run()", where, lambda: session.run(feeds))
        if not ran:
            return
        if not isinstance(outputs, list | tuple) or len(outputs) != len(expected):
            r.add("violation", "Session.run()", f"{where}: returned {type(outputs).__name__} of "
                  f"{len(outputs) if isinstance(outputs, list | tuple) else '?'} outputs; expected a list of "
                  f"{len(expected)} numpy arrays, in the model's output order")
            return
        worst = 0.0
        for got, want in zip(outputs, expected, strict=True):
            got = np.asarray(got)
            if got.shape != want.shape:
                r.add("violation", "Session.run()", f"{where}: output shape {got.shape}; expected {want.shape}")
                return
            scale = max(1.0, float(np.abs(want).max(initial=0.0)))
            worst = max(worst, float(np.abs(got.astype(np.float64) - want).max(initial=0.0)) / scale)
        if not math.isfinite(worst) or worst > self.tolerance:
            r.add("violation", "Session.run()", f"{where}: outputs differ from onnxruntime's by {worst:.3g} "
                  f"(relative to the output scale); expected <= {self.tolerance:g}")
        else:
            r.add("ok", "Session.run()", f"{where}: matches onnxruntime within {worst:.2g} (tolerance "
                  f"{self.tolerance:g})")
        try:
            times = session.timed_runs(feeds, 3)
            if (not isinstance(times, list | tuple) or len(times) != 3
                    or not all(isinstance(t, int | float) and math.isfinite(t) and t > 0 for t in times)):
                r.add("violation", "Session.timed_runs()", f"{where}: returned {times!r}; expected 3 positive "
                      "seconds, one per call")
            else:
                r.add("ok", "Session.timed_runs()", f"{where}: {len(times)} positive times")
        except Exception as exc:
            r.add("violation", "Session.timed_runs()", f"{where}: raised {type(exc).__name__}: {exc}")
        try:
            described = session.describe()
            json.dumps(described)
            if not isinstance(described, dict):
                raise TypeError(f"a {type(described).__name__}")
        except Exception as exc:
            r.add("violation", "Session.describe()", f"{where}: {exc}; expected a JSON-ready dict for the report")


def _onnxruntime_outputs(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return [np.asarray(o, dtype=np.float64) for o in session.run(None, feeds)]
