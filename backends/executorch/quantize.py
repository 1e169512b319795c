"""The ``quantization.int8`` implementation of the ExecuTorch backend: PT2E with the XNNPACK quantizer.

A torch-stage step (``stage = Stage.TORCH``): PT2E quantizes the exported torch graph, and the backend
lowers the converted graph like any other torch model (XNNPACK fuses its quantize/dequantize pairs into
int8 kernels). The strategy's params map onto the quantizer as follows; what has no counterpart is
refused at compile time, naming the param, or noted when it is another runtime's knob.

* ``mode``: ``static`` (calibrated int8 activations: Conv and Linear), ``dynamic`` (activation scales per
  call, Linear only: for Linear-heavy models), ``auto``: ``dynamic`` for the transformer recipe, else
  ``static``; ``weight_only`` is refused (no int8 weight-only scheme in the XNNPACK quantizer).
* ``per_channel``: ``is_per_channel``; ``keep_float_layers``: module-name globs kept float
  (``set_module_name(name, None)``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from edgecraft.backends.executorch.options import INSTALL_HINT, executorch_installed
from edgecraft.errors import InputError
from edgecraft.models import ModelHandle, Stage, TorchModel
from edgecraft.quantize import (
    Int8Description,
    Int8Implementation,
    Int8Job,
    Int8Request,
    Int8Resolution,
    Int8Run,
    RecipeFinding,
)

if TYPE_CHECKING:
    from edgecraft.context import CompileContext

PT2E = "PT2E (torchao prepare_pt2e/convert_pt2e) with the XNNPACK quantizer"


class EtInt8(Int8Implementation):
    backend: ClassVar[str] = "executorch"
    stage: ClassVar[Stage] = Stage.TORCH
    summary: ClassVar[str] = "PT2E with XNNPACKQuantizer: static or dynamic int8, symmetric per-channel weights"

    # ------------------------------------------------------------------ compile time
    def resolve(self, request: Int8Request, ctx: CompileContext) -> Int8Resolution:
        r = request
        if not executorch_installed():
            raise ctx.error("int8 on ExecuTorch uses its XNNPACK quantizer, which is not installed", hint=INSTALL_HINT)
        notes: list[str] = []
        if r.mode == "weight_only":
            raise ctx.error("params.mode 'weight_only' is not available on ExecuTorch: the XNNPACK quantizer "
                            "quantizes weights with activations (static) or with per-call activation scales "
                            "(dynamic)", hint="use mode 'static', or 'dynamic' for Linear-heavy models")
        if r.mode == "auto" and r.recipe != "auto":
            r = dataclasses.replace(r, mode="dynamic" if r.recipe == "transformer" else "static")
        if r.calibration_method != "minmax":
            raise ctx.error(f"params.calibration_method {r.calibration_method!r} is not available with the XNNPACK "
                            "quantizer (its static config observes activations with its own histogram observer)",
                            hint="leave calibration_method at 'minmax'")
        if r.activation_type == "uint8" or r.weight_type == "uint8":
            raise ctx.error("uint8 is not available on XNNPACK's int8 scheme: activations and weights are signed "
                            "int8 (weights symmetric)", hint="leave activation_type and weight_type at 'auto'")
        if r.keep_float_ops:
            raise ctx.error(f"params.keep_float_ops {list(r.keep_float_ops)} names ONNX operator types, which a "
                            "torch-stage quantizer does not see", hint="keep modules float with keep_float_layers "
                            "(module-name globs, e.g. 'fc' or 'layer4.*')")
        r = dataclasses.replace(r, activation_type="int8", weight_type="int8")
        if r.smooth_alpha is not None or r.reduce_range is not None:
            notes.append("smooth_alpha/reduce_range are ONNX Runtime options; ignored by the XNNPACK quantizer")
        if r.calibration_method == "minmax":
            notes.append("calibration: the XNNPACK quantizer's own observers (histogram for activations, min/max "
                         "for weights)")
        if r.mode == "dynamic":
            return Int8Resolution(r, (), tuple(notes))
        needs = ctx.require_dataset(r.calibration_dataset, "static quantization calibration",
                                    param="calibration_dataset")
        return Int8Resolution(r, (needs,), tuple(notes))

    def describe(self, request: Int8Request, ctx: CompileContext) -> Int8Description:
        r = request
        if r.accuracy_aware:
            # The strategy's restore loop needs per-layer sensitivity ranking, which this implementation
            # does not provide yet: refused here rather than failing after calibration.
            raise ctx.error("accuracy-aware int8 (restoring layers to float) is not implemented for ExecuTorch; "
                            "the plan's accuracy contract is still judged on the target",
                            hint="set params.accuracy_aware.enabled to 'off' (keep layers float by name with "
                                 "keep_float_layers)")
        mode = r.mode if r.mode != "auto" else "static, or dynamic if the graph is a transformer"
        pc = "per-channel" if r.per_channel else "per-tensor"
        return Int8Description(f"{PT2E} ({mode}, symmetric {pc} weights)")

    # ------------------------------------------------------------------ run time
    def detect_recipe(self, model: ModelHandle) -> RecipeFinding | None:
        if not isinstance(model, TorchModel):
            return None
        attention = [n for n, m in model.module.named_modules() if "attention" in type(m).__name__.lower()]
        if attention:
            return RecipeFinding("transformer", f"attention modules in the torch model ({attention[0]}, ...)")
        return RecipeFinding("cnn", "no attention modules in the torch model")

    def prepare(self, model: ModelHandle, request: Int8Request, run: Int8Run) -> EtInt8Job:
        from edgecraft.backends.executorch.quantize_pt2e import keep_float_names

        if not isinstance(model, TorchModel):
            raise InputError(f"{run.where}: PT2E quantizes a torch model; got a {model.stage}-stage model")
        r = request
        if r.mode == "auto":
            r = dataclasses.replace(r, mode="dynamic" if r.recipe == "transformer" else "static")
        kept = keep_float_names(model.module, list(r.keep_float_layers), run.where)
        calib = run.calibration() if r.mode == "static" else []
        details: dict[str, Any] = {"mode": r.mode, "per_channel": r.per_channel, "quantizer": "XNNPACKQuantizer",
                                   "kept_float_by_params": {"layers": list(r.keep_float_layers)}}
        if r.mode == "static":
            details["calibration_samples"] = len(calib)
        return EtInt8Job(r, details, kept, model=model, run=run, calib=calib)


class EtInt8Job(Int8Job):
    """One torch model, the modules kept float and the calibration samples."""

    def __init__(self, request: Int8Request, details: dict[str, Any], kept: list[str], *, model: TorchModel,
                 run: Int8Run, calib: list[Any]) -> None:
        super().__init__(request, details, kept)
        self._model, self._run, self._calib = model, run, calib

    def build(self, keep_float: Sequence[str] = ()) -> TorchModel:
        from edgecraft.backends.executorch.quantize_pt2e import quantize

        self._run.status(f"PT2E {self.request.mode} int8 (XNNPACK quantizer)")
        converted = quantize(self._model, per_channel=self.request.per_channel, dynamic=self.request.mode == "dynamic",
                             keep_float=[*(self.kept_by_params or []), *keep_float], calibration=self._calib)
        out = self._model.with_module(converted)
        out.lineage = self._run.lineage(self._model, self.request)
        return out

    def facts(self, model: ModelHandle) -> dict[str, Any]:
        from edgecraft.backends.executorch.quantize_pt2e import int8_facts

        assert isinstance(model, TorchModel)
        return int8_facts(model.module)
