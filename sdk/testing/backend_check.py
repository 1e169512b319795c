"""The conformance checks of a backend: its targets (strict options, capability tags), runtime versions, and on
every available target a round trip of the kit's ONNX models: ``import_onnx()``, ``save()``,
``artifact_size()``, ``load()``, a session whose outputs match the reference runtime's, ``timed_runs()``,
``describe()``, and ``close()`` releasing what ``load()`` took. A target that imports torch models
(``TargetInfo.imports == "torch"``) gets the same round trip from the kit's torch modules through
``import_torch()``, its outputs compared with torch's own.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from edgecraft.errors import EdgecraftError, InputError, PluginError
from edgecraft.testing.findings import RAISED, ConformanceReport, Rung, attempt

#: The outputs the backend's must match: (ONNX file, feeds) -> one float64 array per output.
ReferenceOutputs = Callable[[Path, dict[str, np.ndarray]], list[np.ndarray]]

#: A PluginError already says what the backend broke (edgecraft.plugin_checks); anything else, what it raised.
_PLUGIN_MESSAGE_OR_RAISED: tuple[Rung, ...] = ((PluginError, "violation", lambda e: e.message), *RAISED)


class BackendCheck:
    """The checks of backend ``name``; its sessions' outputs are compared with ``reference``'s (the kit's
    reference runtime, ONNX Runtime: see :mod:`edgecraft.testing.conformance`), and a target tagged for int8
    runs ``int8_model``'s QDQ graph (written by ONNX Runtime's quantization tool, from the same module)."""

    def __init__(self, registry: Any, name: str, targets: Iterable[str] | None,
                 options: Mapping[str, Mapping[str, Any]], tolerance: float, work: Path,
                 reference: ReferenceOutputs, int8_model: Callable[[Path], Path]) -> None:
        self.registry, self.name, self.tolerance, self.work = registry, name, tolerance, work
        self.reference, self.int8_model = reference, int8_model
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
        from edgecraft.testing.models import KIT_MODELS, ONNX_BUILDERS

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
        if info.imports == "torch":
            for kit_model in KIT_MODELS:
                self._torch_round_trip(info, options, kit_model)
            return
        for model_name, (build, kit_model) in ONNX_BUILDERS.items():
            self._round_trip(info, options, model_name, build, kit_model)
        claims = sorted(tag for tag in info.capabilities if "int8" in tag)
        if claims:
            self._check_int8(info, options, claims)

    def _check_int8(self, info: Any, options: Any, claims: list[str]) -> None:
        """A target tagged for int8 runs an int8 QDQ graph on integer kernels, as its session's ``describe()``
        reads back from the runtime (``int8_layers``: the built-in backends report which compute layers ran
        int8). A runtime that dequantizes to float would make every int8 plan's speed and memory claims false."""
        from edgecraft.plugin_checks import check_saved_files, check_session

        r, target = self.report, info.name
        where = f"target {target!r} (cnn model, int8 QDQ)"
        folder = self.work / f"{target}-int8"
        work, out = folder / "work", folder / "artifact"
        work.mkdir(parents=True)
        out.mkdir()
        who = f"backend {self.name!r}"
        try:
            onnx_path = self.int8_model(folder / "model.onnx")
        except Exception as exc:  # the kit's own tool failed: not the backend's fault
            r.add("skipped", "int8", f"{where}: the kit could not quantize its model: {type(exc).__name__}: {exc}")
            return
        built, _ = attempt(r, "int8", where, lambda: check_saved_files(self.backend.save(
            self.backend.import_onnx(onnx_path, target, options, work), target, options, out), out, who=who),
            _PLUGIN_MESSAGE_OR_RAISED)
        if not built:
            return
        loaded, session = attempt(r, "int8", where, lambda: check_session(
            self.backend.load(out, target, options, 1), who=who), _PLUGIN_MESSAGE_OR_RAISED)
        if not loaded:
            return
        try:
            layers = session.describe().get("int8_layers")
        except Exception:  # describe() itself is checked on the round trips
            layers = None
        finally:
            session.close()
        tags = ", ".join(claims)
        if not isinstance(layers, dict) or "int8" not in layers:
            r.add("note", "int8", f"{where}: tagged {tags}, but Session.describe() has no 'int8_layers' saying which "
                  "compute layers ran int8, so the kit cannot check the claim")
        elif not layers["int8"]:
            r.add("violation", "int8", f"{where}: tagged {tags}, but its runtime ran every compute layer of an int8 "
                  f"QDQ graph in float ({layers.get('float')}); expected integer kernels, or drop the int8 tags")
        else:
            r.add("ok", "int8", f"{where}: integer kernels ran ({layers['int8']}; float: "
                  f"{layers.get('float') or 'none'})")

    def _torch_round_trip(self, info: Any, options: Any, kit_model: Any) -> None:
        """``import_torch()`` of the kit's torch module, then the same save/load/session checks as ONNX's."""
        import torch
        from edgecraft.modelio import ModelIO, TensorSpec
        from edgecraft.models import TorchModel
        from edgecraft.testing.models import tiny_cnn, tiny_multi_input

        r, target = self.report, info.name
        where = f"target {target!r} ({kit_model.name} torch model)"
        folder = self.work / f"{target}-{kit_model.name}-torch"
        work, out = folder / "work", folder / "artifact"
        work.mkdir(parents=True)
        out.mkdir()
        module = {"cnn": tiny_cnn, "multi": tiny_multi_input}[kit_model.name]()
        io = ModelIO(tuple(TensorSpec(n, dt, ("batch", *shape), 0) for n, (shape, dt) in kit_model.inputs.items()),
                     (TensorSpec(kit_model.source["output_name"], "float32", ("batch", 3), 0),))
        imported, native = attempt(r, "import_torch()", where, lambda: self.backend.import_torch(
            TorchModel(module, io), target, options, work))
        if not imported:
            return
        feeds = kit_model.feeds(4)
        with torch.no_grad():
            got = module(*(torch.from_numpy(feeds[n]) for n in io.input_names))
        self._save_and_check(info, options, where, native, out, feeds, [got.numpy().astype(np.float64)],
                             [got.numpy().dtype])

    def _round_trip(self, info: Any, options: Any, model_name: str, build: Any, kit_model: Any) -> None:
        r, target = self.report, info.name
        where = f"target {target!r} ({model_name} model)"
        folder = self.work / f"{target}-{model_name}"
        work, out = folder / "work", folder / "artifact"
        work.mkdir(parents=True)
        out.mkdir()
        onnx_path = build(folder / "model.onnx")
        imported, native = attempt(r, "import_onnx()", where,
                                    lambda: self.backend.import_onnx(onnx_path, target, options, work))
        if not imported:
            return
        feeds = kit_model.feeds(4)
        self._save_and_check(info, options, where, native, out, feeds, self.reference(onnx_path, feeds),
                             _output_dtypes(onnx_path))

    def _save_and_check(self, info: Any, options: Any, where: str, native: Any, out: Path,
                        feeds: dict[str, np.ndarray], expected: list[np.ndarray],
                        dtypes: list[np.dtype[Any]]) -> None:
        from edgecraft.plugin_checks import check_saved_files, check_session

        r, target, who = self.report, info.name, f"backend {self.name!r}"
        saved, files = attempt(r, "save()", where, lambda: check_saved_files(
            self.backend.save(native, target, options, out), out, who=who), _PLUGIN_MESSAGE_OR_RAISED)
        if not saved:
            return
        sized, size = attempt(r, "artifact_size()", where, lambda: self.backend.artifact_size(files))
        if sized and (not isinstance(size, int) or size <= 0):
            r.add("violation", "artifact_size()", f"{where}: returned {size!r}; expected a positive int (bytes)")
        r.add("ok", f"import_{'torch' if info.imports == 'torch' else 'onnx'}()/save()",
              f"{where}: wrote {[f.name for f in files]}")
        loaded, session = attempt(r, "load()", where, lambda: check_session(
            self.backend.load(out, target, options, 1), who=who), _PLUGIN_MESSAGE_OR_RAISED)
        if not loaded:
            return
        try:
            self._check_session(session, where, feeds, expected, dtypes)
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
                       expected: list[np.ndarray], dtypes: list[np.dtype[Any]]) -> None:
        """``dtypes``: what each output must be (the ONNX graph's declared types, or torch's own outputs')."""
        r = self.report
        named, names = attempt(r, "Session.input_names", where, lambda: list(session.input_names))
        if not named:
            return
        if sorted(names) != sorted(feeds):
            r.add("violation", "Session.input_names", f"{where}: is {names}; expected the model's inputs "
                  f"{list(feeds)} (in the model's order)")
            return
        if names != list(feeds):  # feeds are built and fed positionally in this order (e.g. by a device server)
            r.add("violation", "Session.input_names", f"{where}: lists the inputs as {names}; expected the model's "
                  f"order {list(feeds)}")
            return
        r.add("ok", "Session.input_names", f"{where}: {names}")
        ran, outputs = attempt(r, "Session.run()", where, lambda: session.run(feeds))
        if not ran:
            return
        if not isinstance(outputs, list | tuple) or len(outputs) != len(expected):
            r.add("violation", "Session.run()", f"{where}: returned {type(outputs).__name__} of "
                  f"{len(outputs) if isinstance(outputs, list | tuple) else '?'} outputs; expected a list of "
                  f"{len(expected)} numpy arrays, in the model's output order")
            return
        worst, kinds = 0.0, []
        for got, want in zip(outputs, expected, strict=True):
            got = np.asarray(got)
            if got.shape != want.shape:
                r.add("violation", "Session.run()", f"{where}: output shape {got.shape}; expected {want.shape}")
                return
            if dtypes and got.dtype != dtypes[len(kinds)]:
                r.add("violation", "Session.run()", f"{where}: output {len(kinds)} is {got.dtype}; expected the "
                      f"model's {dtypes[len(kinds)]} (metrics, contracts and reports compare outputs as declared)")
                return
            kinds.append(got.dtype)
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


def _output_dtypes(onnx_path: Path) -> list[np.dtype[Any]]:
    """The numpy dtype of each output the ONNX graph declares (what a session must return)."""
    import onnx
    from onnx import helper

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    return [np.dtype(helper.tensor_dtype_to_np_dtype(o.type.tensor_type.elem_type)) for o in graph.output]
