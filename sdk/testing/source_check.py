"""The conformance checks of a model source kind: its params model, ``io()`` (a ModelIO, the same twice),
``load()`` (a handle of the kind's stage carrying the declared inputs, a model that runs on them and gives
finite outputs, as many as declared) and ``fingerprint()`` (a non-empty str, the same for the same model).

The kit runs the real :class:`~edgecraft.model_source.ModelSourceLoader` a plan uses (the plan's ``inputs``
overrides applied, concrete shapes checked), so "conforms" means "a plan naming this kind can load it".
A kind whose params have required fields is checked with the params given (``--params``); without them
the check is skipped, not failed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from edgecraft.errors import EdgecraftError
from edgecraft.testing.findings import ConformanceReport, attempt


def params_for(report: ConformanceReport, cls: Any, base: type, kind: str, params: dict[str, Any],
               base_name: str) -> Any:
    """Validate ``{kind, **params}`` with ``cls.params_model``: the instance, or None after a finding.

    A model that is not a subclass of ``base``, or refuses its own ``kind``, is a violation; one that needs
    fields the kit cannot guess is a skip naming them (pass them with ``--params``)."""
    from pydantic import ValidationError

    model = getattr(cls, "params_model", None)
    if not (isinstance(model, type) and issubclass(model, base)):
        report.add("violation", "params_model", f"is {model!r}; expected a subclass of {base_name}")
        return None
    if model.model_config.get("extra") != "forbid":
        report.add("violation", "params_model", "accepts unknown keys; expected extra='forbid' (subclass "
                   f"{base_name} and keep its model_config) so a misspelled field is a plan error")
    try:
        instance = model.model_validate({**params, "kind": kind})
    except ValidationError as exc:
        errors = exc.errors()
        if any(e.get("loc", ())[:1] == ("kind",) for e in errors):
            report.add("violation", "params_model", f"refuses kind={kind!r}, the kind it registers under; "
                       f"expected kind: Literal[{kind!r}]")
            return None
        missing = [".".join(map(str, e["loc"])) or e["msg"] for e in errors]
        report.add("skipped", "params_model", f"params {params} do not validate (fields {missing}); pass "
                   "valid params with --params JSON (check_plugin(params=...)) to check the rest")
        return None
    report.add("ok", "params_model", f"validates kind={kind!r} with params {params}")
    return instance


class ModelSourceCheck:
    def __init__(self, registry: Any, name: str, params: dict[str, Any], work: Path,
                 run_onnx: Callable[[Path, dict[str, np.ndarray]], list[np.ndarray]]) -> None:
        """``run_onnx``: the kit's reference runtime (onnxruntime, from :mod:`edgecraft.testing.conformance`)."""
        self.run_onnx = run_onnx
        provided = registry.model_sources[name]
        self.cls, self.name, self.params, self.work = provided.obj, name, params, work
        self.report = ConformanceReport("model source", name, str(provided.provenance))

    def run(self) -> ConformanceReport:
        from edgecraft.model_source import SourceContext
        from edgecraft.models import Stage
        from edgecraft.plan import SourceParams

        r = self.report
        if not isinstance(getattr(self.cls, "stage", None), Stage) or self.cls.stage == Stage.NATIVE:
            r.add("violation", "stage", f"is {getattr(self.cls, 'stage', None)!r}; expected Stage.TORCH or "
                  "Stage.ONNX (what load() returns)")
            return r
        params = params_for(r, self.cls, SourceParams, self.name, self.params, "edgecraft.plan.SourceParams")
        if params is None:
            return r
        first = self._load(params, SourceContext(self.work, self.work / "scratch-1"), "first load")
        if first is None:
            return r
        second = self._load(params, SourceContext(self.work, self.work / "scratch-2"), "second load")
        if second is not None:
            self._check_fingerprints(first, second)
        ok, text = attempt(r, "describe()", "", lambda: self.cls().describe(params))
        if ok:
            if isinstance(text, str) and text.strip():
                r.add("ok", "describe()", f"{text!r}")
            else:
                r.add("violation", "describe()", f"returned {text!r}; expected a non-empty str for logs and reports")
        return r

    def _load(self, params: Any, ctx: Any, where: str) -> tuple[Any, str] | None:
        """io() twice, then load() through the plan's loader; the handle and its fingerprint, or None."""
        from edgecraft.errors import CompileError
        from edgecraft.model_source import ModelSourceLoader
        from edgecraft.modelio import ModelIO

        r, source = self.report, self.cls()
        ctx.scratch.mkdir(parents=True, exist_ok=True)
        ok, own = attempt(r, "io()", where, lambda: source.io(params, ctx))
        if not ok:
            return None
        if not isinstance(own, ModelIO):
            r.add("violation", "io()", f"{where}: returned {type(own).__name__}; expected an edgecraft ModelIO")
            return None
        ok, again = attempt(r, "io()", where, lambda: source.io(params, ctx))
        if ok and again != own:
            r.add("violation", "io()", f"{where}: two calls declared different I/O ({own.describe()} then "
                  f"{getattr(again, 'describe', lambda: again)()}); expected the same for the same params")
        loader = ModelSourceLoader(source, params, self.work)
        loader.ctx = ctx
        try:
            io = loader.io()
            io.check_concrete()
        except CompileError as exc:
            r.add("skipped", "io()", f"{where}: {exc.message}; pass concrete shapes in --params "
                  "{\"inputs\": {...}}")
            return None
        except EdgecraftError as exc:
            r.add("violation", "io()", f"{where}: the declared I/O is not usable: {exc.message}")
            return None
        ok, handle = attempt(r, "load()", where, loader.fresh)
        if not ok or not self._check_handle(handle, io, where):
            return None
        ok, digest = attempt(r, "fingerprint()", where, loader.fingerprint)
        if not ok:
            return None
        if not isinstance(digest, str) or not digest:
            r.add("violation", "fingerprint()", f"{where}: returned {digest!r}; expected a non-empty str (the "
                  "artifact cache's key)")
            return None
        return handle, digest

    def _check_handle(self, handle: Any, io: Any, where: str) -> bool:
        from edgecraft.model_source import check_onnx_file, check_torch_runs
        from edgecraft.modelio import synthetic_feeds
        from edgecraft.models import OnnxModel, Stage, TorchModel

        r = self.report
        expected = TorchModel if self.cls.stage == Stage.TORCH else OnnxModel
        if not isinstance(handle, expected):
            r.add("violation", "load()", f"{where}: returned {type(handle).__name__}; the kind's stage is "
                  f"{self.cls.stage}, so expected an edgecraft {expected.__name__}")
            return False
        if handle.io.input_names != io.input_names:
            r.add("violation", "load()", f"{where}: the handle's inputs are {handle.io.input_names}; io() declared "
                  f"{io.input_names}")
            return False
        if isinstance(handle, TorchModel):
            try:
                check_torch_runs(handle)
            except EdgecraftError as exc:
                r.add("violation", "load()", f"{where}: {exc.message}")
                return False
            outputs = _torch_outputs(handle, io)
        else:
            try:
                proto = check_onnx_file(Path(handle.path), where=f"{where} ONNX file")
            except EdgecraftError as exc:
                r.add("violation", "load()", f"{where}: {exc.message}")
                return False
            graph_inputs = [i.name for i in proto.graph.input
                            if i.name not in {t.name for t in proto.graph.initializer}]
            if graph_inputs != io.input_names:
                r.add("violation", "load()", f"{where}: the ONNX graph's inputs are {graph_inputs}; the declared "
                      f"I/O says {io.input_names} (same names, same order)")
                return False
            ok, outputs = attempt(r, "load()", f"{where}: running the ONNX model on its declared inputs",
                                  lambda: self.run_onnx(Path(handle.path), synthetic_feeds(io, 2, seed=0)))
            if not ok:
                return False
        if io.outputs and len(outputs) != len(io.outputs):
            r.add("violation", "load()", f"{where}: the model returns {len(outputs)} outputs; io() declared "
                  f"{len(io.outputs)} ({io.output_names})")
            return False
        bad = [i for i, o in enumerate(outputs) if np.asarray(o).dtype.kind == "f" and not np.isfinite(o).all()]
        if bad:
            r.add("violation", "load()", f"{where}: output(s) {bad} hold NaN or Inf on the declared inputs")
            return False
        r.add("ok", "load()", f"{where}: {type(handle).__name__} with inputs {io.input_names}, runs, "
              f"{len(outputs)} finite output(s)")
        return True

    def _check_fingerprints(self, first: tuple[Any, str], second: tuple[Any, str]) -> None:
        from edgecraft.model_source import UNCACHED_PREFIX

        r = self.report
        if first[1].startswith(UNCACHED_PREFIX):
            r.add("note", "fingerprint()", f"uncached: {first[1].partition(': ')[2] or first[1]}")
        elif first[1] != second[1]:
            r.add("violation", "fingerprint()", f"two loads of the same params gave {first[1][:16]}... and "
                  f"{second[1][:16]}...; expected the same (else the artifact cache never hits)")
        else:
            r.add("ok", "fingerprint()", "the same for the same params")


def _torch_outputs(handle: Any, io: Any) -> list[np.ndarray]:
    import torch
    from edgecraft.modelio import synthetic_feeds

    feeds = synthetic_feeds(io, 2, seed=0)
    with torch.no_grad():
        result = handle.module.eval()(*[torch.from_numpy(feeds[n]) for n in io.input_names])
    outputs = result if isinstance(result, tuple | list) else (result,)
    return [o.detach().cpu().numpy() for o in outputs]


__all__ = ["ModelSourceCheck", "params_for"]
