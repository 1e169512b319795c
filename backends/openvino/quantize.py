"""The ``quantization.int8`` implementation of the OpenVINO backend: NNCF on the ``openvino.Model``.

A native-stage step (NNCF works on the backend's in-memory model): ``nncf.quantize`` with its CPU preset
(its TRANSFORMER model type for transformers), ``nncf.compress_weights`` for weight-only, and NNCF's own
accuracy-aware search (``nncf.quantize_with_accuracy_control``) when the plan has an accuracy contract,
falling back to plain ``nncf.quantize`` with a note if NNCF's layer ranking fails inside OpenVINO.
Why these defaults: :mod:`.quantize_nncf`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from edgecraft.backends.openvino.options import INSTALL_HINT, NATIVE_FORMAT
from edgecraft.errors import InputError
from edgecraft.models import ModelHandle, NativeModel, Stage
from edgecraft.quantize import (
    AccuracyGoal,
    ControlledInt8,
    Int8Description,
    Int8Evidence,
    Int8Implementation,
    Int8Job,
    Int8Request,
    Int8Resolution,
    Int8Run,
    RecipeFinding,
)

if TYPE_CHECKING:
    from edgecraft.context import CompileContext

ACCURACY_CONTROL = "nncf.quantize_with_accuracy_control"


class OvInt8(Int8Implementation):
    backend: ClassVar[str] = "openvino"
    stage: ClassVar[Stage] = Stage.NATIVE
    #: the ONNX frontend turns QDQ pairs into FakeQuantize, run as u8/i8 convolutions;
    #: the session's ``int8_layers`` says per layer what ran.
    runs_qdq_graphs: ClassVar[bool] = True
    summary: ClassVar[str] = "NNCF: nncf.quantize (CPU preset), compress_weights, quantize_with_accuracy_control"

    # ------------------------------------------------------------------ compile time
    def resolve(self, request: Int8Request, ctx: CompileContext) -> Int8Resolution:
        r = request
        if ctx.target.info.native_format != NATIVE_FORMAT:
            # NNCF works on the backend's in-memory model, which must be an openvino.Model.
            raise ctx.error(f"target {ctx.target.target!r} is served by the NNCF implementation but its "
                            f"native_format is {ctx.target.info.native_format!r}; NNCF quantizes an in-memory "
                            f"openvino.Model (native_format {NATIVE_FORMAT!r})",
                            hint="a backend using NNCF must set native_format='openvino' and hand native-stage "
                                 "steps an openvino.Model from import_onnx")
        notes: list[str] = []
        if importlib.util.find_spec("nncf") is None:
            raise ctx.error("quantization on OpenVINO uses NNCF, which is not installed", hint=INSTALL_HINT)
        if r.mode == "dynamic":
            raise ctx.error("params.mode 'dynamic' is not available on OpenVINO: NNCF quantizes activations "
                            "statically (from calibration data) or compresses weights only",
                            hint="use mode 'static' (int8 compute) or 'weight_only' (int8 weights, float compute)")
        if r.mode == "auto":
            r = dataclasses.replace(r, mode="static")
        if r.smooth_alpha is not None:
            # One step serves every target of the plan: an ORT-only knob is noted, not an error here.
            notes.append("smooth_alpha is an ONNX Runtime option; ignored here (NNCF's TRANSFORMER model type "
                         "applies its own SmoothQuant)")
        if r.calibration_method == "entropy":
            raise ctx.error("params.calibration_method 'entropy' is not available in NNCF",
                            hint="use 'minmax' or 'percentile' (NNCF's quantile range estimator)")
        if r.activation_type != "auto":
            raise ctx.error(f"params.activation_type {r.activation_type!r} cannot be forced on OpenVINO: NNCF "
                            "picks u8 or i8 per activation (u8 after ReLU)", hint="leave activation_type at 'auto'")
        if r.weight_type == "uint8":
            raise ctx.error("params.weight_type 'uint8' is not available on OpenVINO: NNCF's CPU preset uses "
                            "symmetric int8 weights", hint="leave weight_type at 'auto' (or 'int8')")
        r = dataclasses.replace(r, weight_type="int8")
        if r.reduce_range is not None:
            notes.append("reduce_range is an ONNX Runtime option; ignored by NNCF")
        if r.mode == "weight_only":
            notes.append("weight_only: int8 weights, float compute: a smaller artifact, not a faster one")
            return Int8Resolution(r, (), tuple(notes))
        needs = ctx.require_dataset(r.calibration_dataset, "static quantization calibration",
                                    param="calibration_dataset")
        return Int8Resolution(r, (needs,), tuple(notes))

    def describe(self, request: Int8Request, ctx: CompileContext) -> Int8Description:
        r = request
        if r.mode == "weight_only":
            return Int8Description("nncf.compress_weights (INT8_ASYM)")
        notes: list[str] = []
        if r.accuracy_aware and r.accuracy_contracts > 1:
            notes.append("several accuracy contracts: NNCF aims at the tightest; all are checked afterwards")
        impl = ACCURACY_CONTROL if r.accuracy_aware else "nncf.quantize"
        pc = "per-channel" if r.per_channel else "per-tensor"
        if r.recipe == "hybrid":
            pc += ", model_type TRANSFORMER"
            notes.append("hybrid recipe on OpenVINO: NNCF's TRANSFORMER model type quantizes the Convs as well and "
                         "keeps Softmax, LayerNorm and residual Adds in float (the same as the transformer recipe)")
        elif r.recipe == "transformer":
            pc += ", model_type TRANSFORMER"
            notes.append("transformer recipe: NNCF's TRANSFORMER model type keeps Softmax, LayerNorm and "
                         "residual Adds in float and applies SmoothQuant (MiniLM: cosine 0.997, 2.4x over f32)")
        elif r.recipe == "auto":
            pc += ", model_type from the graph"
        return Int8Description(f"{impl} ({pc}, {r.calibration_method})", tuple(notes))

    # ------------------------------------------------------------------ run time
    def detect_recipe(self, model: ModelHandle) -> RecipeFinding | None:
        from edgecraft.backends.openvino.quantize_nncf import detect_openvino

        return detect_openvino(model.model) if isinstance(model, NativeModel) else None

    def prepare(self, model: ModelHandle, request: Int8Request, run: Int8Run) -> OvInt8Job:
        from edgecraft.backends.openvino import quantize_nncf as eng

        if not isinstance(model, NativeModel):
            raise InputError(f"{run.where}: NNCF quantizes an openvino.Model; got a {model.stage}-stage model")
        r = dataclasses.replace(request, mode="static") if request.mode == "auto" else request
        transformer = r.recipe in ("transformer", "hybrid") and r.mode == "static"
        details: dict[str, Any] = {}
        if transformer:
            details["model_type"] = ("nncf.ModelType.TRANSFORMER (SmoothQuant, bias correction; Softmax, "
                                     "LayerNorm and residual Adds stay float)")
        scope = eng.ignored_scope(model.model, list(r.keep_float_layers), list(r.keep_float_ops), run.where)
        details.update({"mode": r.mode, "per_channel": r.per_channel,
                        "kept_float_by_params": {"layers": list(r.keep_float_layers), "ops": list(r.keep_float_ops)}})
        calib: list[Any] = []
        if r.mode != "weight_only":
            calib = run.calibration()
            details.update(calibration_samples=len(calib), calibration_method=r.calibration_method)
        # NNCF's ignored scope takes the patterns themselves: they are what stays in float.
        kept = None if r.mode == "weight_only" else list(r.keep_float_layers)
        return OvInt8Job(r, details, kept, model=model, run=run, scope=scope, calib=calib, transformer=transformer)


class OvInt8Job(Int8Job):
    """One ``openvino.Model``, its NNCF ignored scope and calibration samples."""

    accuracy_control: ClassVar[str | None] = ACCURACY_CONTROL

    def __init__(self, request: Int8Request, details: dict[str, Any], kept: list[str] | None, *, model: NativeModel,
                 run: Int8Run, scope: Any, calib: list[Any], transformer: bool) -> None:
        super().__init__(request, details, kept)
        self._model, self._run, self._scope, self._calib = model, run, scope, calib
        self._transformer = transformer

    def _wrap(self, quantized: Any) -> NativeModel:
        return NativeModel(quantized, self._model.format, self._model.io, self._run.lineage(self._model, self.request))

    def _quantize(self) -> Any:
        from edgecraft.backends.openvino import quantize_nncf as eng

        return eng.quantize(self._model.model, self._calib, per_channel=self.request.per_channel,
                            calibration_method=self.request.calibration_method, scope=self._scope,
                            transformer=self._transformer)

    def build(self, keep_float: Sequence[str] = ()) -> NativeModel:
        from edgecraft.backends.openvino import quantize_nncf as eng

        if keep_float:
            raise NotImplementedError("NNCF returns layers to float in its own accuracy-aware search "
                                      "(control_accuracy)")
        if self.request.mode == "weight_only":
            self._run.status("nncf.compress_weights")
            return self._wrap(eng.compress_weights(self._model.model, self._scope))
        self._run.status("nncf.quantize")
        return self._wrap(self._quantize())

    def control_accuracy(self, goal: AccuracyGoal) -> ControlledInt8:
        """``nncf.quantize_with_accuracy_control`` aiming at ``goal``; NNCF validates every candidate on the
        OpenVINO CPU plugin in f32. If it raises inside OpenVINO, plain ``nncf.quantize`` (and why)."""
        from edgecraft.backends.openvino import quantize_nncf as eng

        metric = goal.metric
        if metric.all_outputs:
            raise InputError(f"{self._run.where}: NNCF's accuracy control scores one output; metric "
                             f"{metric.name!r} reads every output", hint="bound the accuracy with another metric")
        reference = None
        if metric.needs_reference:
            reference = eng.reference_outputs(self._model.model, goal.items, goal.output_index, self._run.threads)

        if metric.needs_mask and goal.mask_input is None:
            raise InputError(f"{self._run.where}: metric {metric.name!r} needs evaluation.mask_input")

        def score(outputs: np.ndarray, indices: np.ndarray) -> float:
            labels = None if goal.labels is None else goal.labels[indices]
            ref = None if reference is None else reference[indices]
            if metric.needs_mask:
                mask = np.concatenate([goal.items[int(i)][str(goal.mask_input)] for i in indices], axis=0)
                masked: Any = metric.compute
                return float(masked(outputs, labels, ref, mask=mask))
            return float(metric.compute(outputs, labels, ref))

        self._run.status(f"{ACCURACY_CONTROL} (max drop {goal.max_drop:.4g})")
        try:
            result = eng.quantize_with_accuracy_control(
                self._model.model, self._calib, eval_items=goal.items, output_index=goal.output_index,
                metric_fn=score, max_drop=goal.max_drop, relative=goal.relative,
                per_channel=self.request.per_channel, calibration_method=self.request.calibration_method,
                scope=self._scope, max_iterations=goal.max_iterations, ranking_samples=goal.ranking_samples,
                transformer=self._transformer)
        except RuntimeError as exc:
            # OpenVINO's constant folding has failed inside NNCF's layer ranking on exported transformers
            # ("Check 'convert->constant_fold(...)' failed"): keep the plain preset's model rather than fail
            # the run, and say so; the contract verdict still judges it on the target.
            first_line = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            self._run.status("NNCF accuracy control failed; plain nncf.quantize instead")
            return ControlledInt8(
                self._wrap(self._quantize()), evaluations=1,
                fallback=f"{ACCURACY_CONTROL} raised {type(exc).__name__} ({first_line}); used nncf.quantize"
                         f"{' (model_type TRANSFORMER)' if self._transformer else ''} without accuracy control")
        vals = result.validations
        history: list[dict[str, Any]] = []
        if len(vals) >= 2:
            history.append({"step": 0, "kept_float": [], metric.name: vals[1]["value"]})
        kept: list[str] = []
        for i, group in enumerate(result.reverted_steps, start=1):
            kept = [*kept, *group]
            entry: dict[str, Any] = {"step": i, "returned_to_float": group, "kept_float": list(kept)}
            if i + 1 < len(vals):
                entry[metric.name] = vals[i + 1]["value"]
            history.append(entry)
        return ControlledInt8(
            self._wrap(result.model), history, evaluations=max(len(vals) - 1, 0) + 1,
            kept_float=list(result.reverted_final),
            details={"nncf_initial": vals[0]["value"] if vals else None,
                     "nncf_messages": [m for m in result.messages if "ccuracy" in m][-6:]})

    def facts(self, model: ModelHandle) -> dict[str, Any]:
        from edgecraft.backends.openvino.quantize_nncf import ov_facts

        assert isinstance(model, NativeModel)
        return ov_facts(model.model)

    def evidence(self, model: ModelHandle) -> Int8Evidence:
        from edgecraft.backends.openvino.quantize_nncf import int8_evidence

        assert isinstance(model, NativeModel)
        return int8_evidence(self._model.model, model.model)
