"""``quantization`` with ``mode: fp16``: the model computed in half precision, where the target's runtime does.

Why a mode of the quantization step and not a target option or a step of its own: reduced precision is a
compression of the model, so it belongs among the plan's steps, where the baseline (the same target with no
steps) stays the fp32 model and every contract judges what fp16 costs. As a target option (``precision: fp16``,
removed) the baseline was fp16 too, and a ``max_drop`` compared fp16 with fp16. One step rather than a new
strategy because int8 and fp16 are the two ends of one decision, what precision each layer computes in, and the
quantization step already owns its parts (which layers stay float, the accuracy budget): int8 with fp16 fallback
layers is the same step's business. The runtime part is each backend's :class:`edgecraft.precision.Fp16Implementation`
(ONNX Runtime's float16 converter on ``ort-aarch64``, a half-precision torch module lowered to XNNPACK on
ExecuTorch); a target whose runtime would not compute in fp16 refuses the step at compile time, saying why.
"""

from __future__ import annotations

from typing import Any

from edgecraft.context import CompileContext, RunContext
from edgecraft.models import ModelHandle, Stage
from edgecraft.plugins.quantization.params import QuantizationParams
from edgecraft.precision import Fp16Implementation, Fp16Request, Fp16Run
from edgecraft.strategy import Resolution, ResolvedStep, StepResult

#: Params that mean something to int8 only, and the value ``mode: fp16`` accepts (what they default to).
_INT8_ONLY: dict[str, Any] = {"recipe": "auto", "calibration_dataset": None, "smooth_alpha": None,
                              "calibration_method": "minmax", "activation_type": "auto", "weight_type": "auto",
                              "reduce_range": None, "per_channel": True}


def _request(p: QuantizationParams) -> Fp16Request:
    return Fp16Request(keep_float_layers=tuple(p.keep_float_layers), keep_float_ops=tuple(p.keep_float_ops))


def resolve_fp16(p: QuantizationParams, ctx: CompileContext) -> Resolution:
    """The fp16 step for this target, or a ``CompileError`` naming the param, or the target and why its runtime
    would not compute in fp16 (the backend's implementation decides, or its declared refusal)."""
    for name, accepted in _INT8_ONLY.items():
        if getattr(p, name) != accepted:
            raise ctx.error(f"params.{name} = {getattr(p, name)!r} applies to int8; mode 'fp16' converts the model "
                            "to half precision without calibration", hint=f"remove params.{name}")
    if p.accuracy_aware.enabled == "on":
        raise ctx.error("params.accuracy_aware.enabled 'on' restores int8 layers to float; mode 'fp16' has no int8 "
                        "layer to restore", hint="keep layers in float32 by name with params.keep_float_layers, and "
                        "set accuracy_aware.enabled to 'auto' or 'off'")
    later = [i for i, s in enumerate(ctx.plan.steps) if i > ctx.step_index and s.strategy == "quantization"]
    if later:
        raise ctx.error(f"mode 'fp16' converts the model to half precision; steps[{later[0]}] would quantize the fp16 "
                        "model again", hint="keep one quantization step: mode 'fp16', or static int8 with "
                        "float_precision 'fp16'")
    impl = ctx.implementation(Fp16Implementation)  # no fp16 on this target at all: the backend's own reason
    resolution = impl.resolve(_request(p), ctx)
    notes = [*resolution.notes]
    if ctx.has_accuracy_contract():
        notes.append("the accuracy contract judges the fp16 model against the fp32 baseline on this target")
    settled = p.model_copy(update={"accuracy_aware": p.accuracy_aware.model_copy(update={"enabled": "off"})})
    return Resolution(stage=impl.stage, implementation=resolution.implementation, params=settled, needs_data=[],
                      notes=notes)


def apply_fp16(step: ResolvedStep, model: ModelHandle, ctx: RunContext) -> StepResult:
    """Convert ``model`` with the target's fp16 implementation; the step's details say what was converted."""
    params = QuantizationParams.model_validate(step.params)
    impl = ctx.implementation(Fp16Implementation)
    run = Fp16Run(where=f"{ctx.step.where} on target {ctx.target.label!r}", step_label=ctx.step.label,
                  target=ctx.target.target, options=ctx.target.options, work_dir=ctx.step_dir())
    ctx.progress.status(f"{ctx.step.where}: converting to fp16")
    out, details = impl.convert(model, _request(params), run)
    out.lineage = [*model.lineage, {"step": ctx.step.label, "quantization": "fp16"}]
    return StepResult(out, {"mode": "fp16", "implementation": step.implementation, **details})


# ---------------------------------------------------------------- int8 with fp16 fallback layers
def check_fallback_mode(p: QuantizationParams, ctx: CompileContext) -> None:
    """``float_precision: fp16`` is about the float layers of an int8 graph: static int8 only."""
    if p.mode != "static":
        raise ctx.error(f"params.float_precision 'fp16' makes the layers a static int8 graph leaves in float compute "
                        f"in fp16; params.mode is {p.mode!r}", hint="set params.mode to 'static' (or use mode 'fp16' "
                        "for a whole model in half precision, and drop float_precision)")


def resolve_fallback(implementation: str, stage: Stage, ctx: CompileContext, notes: list[str]) -> str:
    """Compile the fp16 fallback of an int8 step for this target: the backend's fp16 implementation must accept it
    (it refuses where the runtime would not compute in fp16) and work at the int8 step's stage."""
    impl = ctx.implementation(Fp16Implementation)
    resolution = impl.resolve(Fp16Request(int8_fallback=True), ctx)
    if impl.stage != stage:
        raise ctx.error(f"params.float_precision 'fp16': the {ctx.target.backend_name} backend quantizes at the "
                        f"{stage} stage but converts to fp16 at the {impl.stage} stage", hint="remove float_precision")
    notes.extend(resolution.notes)
    notes.append("float layers in fp16: the accuracy-aware search (if any) picks them in fp32, then they are "
                 "converted; the contract judges the int8+fp16 model")
    return f"{implementation}; float layers in fp16 by {resolution.implementation}"


def fallback_to_fp16(model: ModelHandle, ctx: RunContext, details: dict[str, Any]) -> ModelHandle:
    """The int8 ``model`` with the layers it left in float converted to fp16 (``details['float_fallback']``: what)."""
    impl = ctx.implementation(Fp16Implementation)
    run = Fp16Run(where=f"{ctx.step.where} on target {ctx.target.label!r}", step_label=ctx.step.label,
                  target=ctx.target.target, options=ctx.target.options, work_dir=ctx.step_dir())
    ctx.progress.status(f"{ctx.step.where}: float layers to fp16")
    out, converted = impl.convert(model, Fp16Request(int8_fallback=True), run)
    out.lineage = [*model.lineage, {"step": ctx.step.label, "float_precision": "fp16"}]
    details["float_fallback"] = {"precision": "fp16", **converted}
    return out
