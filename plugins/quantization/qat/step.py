"""``quantization`` with ``mode: qat``: compile-time checks and the run of one QAT step.

Design (why a torch step that exports QDQ, not a per-backend QAT): torch-stage results are shared by every
target of a plan (trained once), and ONNX Runtime and OpenVINO both run a QuantizeLinear/DequantizeLinear
graph on integer kernels *with the scales it carries* (ONNX Runtime fuses it into QLinearConv/QGemm, OpenVINO
into u8/i8 convolutions). So the step trains once with runtime-neutral int8 simulation
(:mod:`.fakequant`: int8 symmetric weights, uint8 per-tensor activations) and each target's own int8 is its
runtime's import of that graph: the learned ranges are carried, never re-calibrated away. A target whose
backend cannot run such a graph as int8 (its int8 implementation does not declare ``runs_qdq_graphs``) is
refused at compile time, as is a target without any int8 implementation (e.g. TVM, with its reason).
"""

from __future__ import annotations

import time
from typing import Any

from edgecraft.context import CompileContext, RunContext
from edgecraft.errors import InputError
from edgecraft.models import ModelHandle, Stage, TorchModel
from edgecraft.plugins.quantization.params import QuantizationParams
from edgecraft.quantize import Int8Implementation
from edgecraft.strategy import Resolution, ResolvedStep, StepResult

#: Params of post-training quantization that mean nothing to QAT, and the value QAT runs with.
_PTQ_ONLY = {"keep_float_layers": [], "keep_float_ops": [], "smooth_alpha": None, "calibration_method": "minmax"}


def resolve_qat(p: QuantizationParams, ctx: CompileContext) -> Resolution:
    """The QAT step for this target, or a ``CompileError`` saying why it cannot be (naming ``params.<field>``)."""
    if ctx.model_kind != "torch":
        raise ctx.error("mode 'qat' fine-tunes the model in torch with int8 simulated; the plan's model is an ONNX "
                        "graph, which edgecraft cannot train", hint="use a torch (or huggingface) model source, or "
                        "params.mode 'static' for post-training int8 of the graph")
    later = ctx.plan.steps[ctx.step_index + 1:]
    if later:
        names = ", ".join(f"steps[{ctx.step_index + 1 + i}] ({s.label})" for i, s in enumerate(later))
        raise ctx.error(f"mode 'qat' must be the plan's last step (the last torch step, and the int8 graph it exports "
                        f"is final), but {names} follow(s) it", hint="move pruning, distillation and "
                        "factorization before the quantization step, and drop other quantization steps")
    earlier_quant = [i for i, s in enumerate(ctx.plan.steps[:ctx.step_index]) if s.strategy == "quantization"]
    if earlier_quant:
        raise ctx.error(f"mode 'qat' trains the float model; steps[{earlier_quant[0]}] already quantizes it",
                        hint="keep one quantization step, with mode 'qat', last")
    impl = ctx.implementation(Int8Implementation)  # no int8 on this target at all: the backend's own reason
    if not impl.runs_qdq_graphs:
        raise ctx.error(f"mode 'qat' exports an int8 QuantizeLinear/DequantizeLinear graph, which backend "
                        f"{ctx.target.backend_name!r} does not run as int8", hint="use a target whose int8 "
                        "implementation runs QDQ graphs (ort-cpu, openvino-cpu), or params.mode 'static'")
    for name, accepted in _PTQ_ONLY.items():
        if getattr(p, name) != accepted:
            raise ctx.error(f"params.{name} = {getattr(p, name)!r} applies to post-training quantization only; "
                            f"mode 'qat' accepts {accepted!r}", hint=f"remove params.{name}")
    if p.recipe == "transformer":
        raise ctx.error("params.recipe 'transformer' keeps attention in float with dynamic int8; mode 'qat' "
                        "quantizes every Conv/Linear statically (the 'cnn' recipe)", hint="set params.recipe to "
                        "'cnn' or 'auto', or use mode 'dynamic' for transformers")
    if p.activation_type == "int8" or p.weight_type == "uint8":
        raise ctx.error("mode 'qat' simulates uint8 activations and int8 weights (the layout both ONNX Runtime and "
                        "OpenVINO run fastest); params.activation_type 'int8' / params.weight_type 'uint8' are not "
                        "supported with it", hint="leave params.activation_type and params.weight_type 'auto'")
    if p.reduce_range:
        raise ctx.error("params.reduce_range (7-bit weights) is not supported with mode 'qat'",
                        hint="leave params.reduce_range null")
    if p.accuracy_aware.enabled == "on":
        raise ctx.error("params.accuracy_aware.enabled 'on' returns layers to float; mode 'qat' keeps every layer "
                        "int8 and trains instead", hint="set params.accuracy_aware.enabled to 'auto' or 'off'")
    dataset = ctx.require_dataset(p.qat.dataset or p.calibration_dataset, "quantization-aware training",
                                  param="qat.dataset" if p.qat.dataset or not p.calibration_dataset
                                  else "calibration_dataset")
    if p.calibration_dataset is not None:
        ctx.require_dataset(p.calibration_dataset, "range calibration", param="calibration_dataset")
    # Target-neutral on purpose: the torch stage (and its cache key) is shared by every target of the plan.
    settled = p.model_copy(update={"recipe": "cnn", "activation_type": "uint8", "weight_type": "int8",
                                   "reduce_range": False, "calibration_dataset": p.calibration_dataset or dataset,
                                   "qat": p.qat.model_copy(update={"dataset": dataset}),
                                   "accuracy_aware": p.accuracy_aware.model_copy(update={"enabled": "off"})})
    scheme = "per-channel" if p.per_channel else "per-tensor"
    loss = {"auto": "distillation from the float model (+ labels when the data has them)",
            "distill": "distillation from the float model", "labels": "cross-entropy on labels"}[p.qat.loss]
    notes = [f"QAT: {p.qat.epochs} epoch(s) on {dataset!r}, {loss}; int8 {scheme} symmetric weights, uint8 "
             "per-tensor activations (ranges by EMA, then frozen)",
             "every target runs the exported QDQ graph with the learned scales (no re-calibration); the torch "
             "stage is trained once and shared by the plan's targets"]
    return Resolution(stage=Stage.TORCH, implementation=f"quantization-aware training, QDQ int8 ({scheme})",
                      params=settled, needs_data=sorted({dataset, settled.calibration_dataset or dataset}),
                      notes=notes)


def apply_qat(step: ResolvedStep, model: ModelHandle, ctx: RunContext) -> StepResult:
    """Calibrate, fine-tune with int8 simulated (the shared trainer), fix the int8 weights: a module that exports
    as a QDQ graph. Details: torch-side accuracy before/after (simulated int8), epochs, wall time."""
    from edgecraft.plugins.quantization.qat.training import run_qat

    if not isinstance(model, TorchModel):
        raise InputError(f"{step.where}: mode 'qat' needs the torch model; got a {model.stage}-stage model")
    p = QuantizationParams.model_validate(step.params)
    started = time.perf_counter()
    module, facts = run_qat(model, p, ctx)
    details: dict[str, Any] = {"mode": "qat", "wall_s": round(time.perf_counter() - started, 2), **facts}
    lineage = [*model.lineage, {"step": step.label,
                                "quantization": f"int8 qat, {'per-channel' if p.per_channel else 'per-tensor'}"}]
    return StepResult(TorchModel(module, model.io, lineage, dict(model.dynamic)), details)
