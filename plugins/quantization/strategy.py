"""The ``quantization`` strategy: one plan step, int8 on every target whose backend knows how.

The algorithm is written once, here; each backend brings its runtime's part (NNCF's ``min_max``
algorithm with one backend class per framework is the model):

* *What*, here: the recipe (``recipe: auto|cnn|transformer``, :mod:`.recipes`: attention blocks in the
  ONNX graph, a Hugging Face source or the torch modules select the transformer recipe, which keeps
  Softmax, LayerNorm, residual Adds and the attention mask in float), whether the step is accuracy-aware
  (an accuracy contract on the target), the drop it may spend, and the loop that returns the most
  sensitive layers to float until the contract holds (:mod:`.restore`).
* *How*, in the target's backend: its :class:`edgecraft.quantize.Int8Implementation`, looked up with
  ``ctx.implementation`` (never by naming a runtime). It completes the request for its target at compile
  time (or refuses it, saying why), builds the int8 model, ranks layers on its runtime, or runs its own
  accuracy-aware search.

A target whose backend has no int8 implementation is a compile-time error that says why (the backend's
declared reason when it gives one): edgecraft never reports int8 where none runs. A new runtime gets int8
by registering an implementation from its own package (docs/plugins.md, "A target that quantizes").
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from edgecraft.context import CompileContext, RunContext
from edgecraft.errors import InputError
from edgecraft.models import ModelHandle, OnnxModel
from edgecraft.plugins.quantization.params import QuantizationParams, to_request, with_request
from edgecraft.quantize import Int8Evidence, Int8Implementation, Int8Request, Int8Run, RecipeFinding
from edgecraft.strategy import Resolution, ResolvedStep, StepResult, Strategy, StrategyParams


class QuantizationStrategy(Strategy):
    name: ClassVar[str] = "quantization"
    params_model: ClassVar[type[StrategyParams]] = QuantizationParams
    summary: ClassVar[str] = ("INT8 post-training quantization, made by each target's backend (its int8 "
                              "implementation); a recipe per model family; accuracy-aware; or quantization-aware "
                              "training (mode 'qat'); or half precision where the runtime computes in it (mode "
                              "'fp16')")

    # ------------------------------------------------------------------ compile time
    @classmethod
    def default_space(cls, params: StrategyParams) -> dict[str, dict[str, Any]]:
        """What `edgecraft search` explores for this step when the plan names no space (see space.py)."""
        from edgecraft.plugins.quantization.space import default_space

        return default_space(params)

    def resolve(self, params: StrategyParams, ctx: CompileContext) -> Resolution:
        assert isinstance(params, QuantizationParams)
        if params.float_precision != "fp32":
            from edgecraft.plugins.quantization.half import check_fallback_mode

            check_fallback_mode(params, ctx)
        if params.mode == "qat":
            from edgecraft.plugins.quantization.qat.step import resolve_qat

            return resolve_qat(params, ctx)
        if params.mode == "fp16":
            from edgecraft.plugins.quantization.half import resolve_fp16

            return resolve_fp16(params, ctx)
        impl = ctx.implementation(Int8Implementation)
        recipe, recipe_note = self._resolve_recipe(params, ctx)
        p = params.model_copy(update={"recipe": recipe})  # the plan's params stay as written
        settled = impl.resolve(to_request(p), ctx)
        request = settled.request
        notes = [recipe_note, *settled.notes]
        if request.mode == "weight_only":
            if p.accuracy_aware.enabled == "on":
                raise ctx.error("accuracy_aware needs int8 compute to restore; weight_only keeps compute in "
                                "float (set accuracy_aware.enabled to 'off' or use mode 'static')")
            active = False
        else:
            active = self._resolve_accuracy(p, ctx, notes)
        if active:
            from edgecraft.plugins.quantization.accuracy import accuracy_contracts

            request = dataclasses.replace(request, accuracy_aware=True,
                                          accuracy_contracts=len(accuracy_contracts(ctx.plan, ctx.target.label)))
        else:
            request = dataclasses.replace(request, accuracy_aware=False, accuracy_contracts=0)
        described = impl.describe(request, ctx)
        implementation = described.implementation
        if p.float_precision == "fp16":
            from edgecraft.plugins.quantization.half import resolve_fallback

            implementation = resolve_fallback(implementation, impl.stage, ctx, notes)
        return Resolution(stage=impl.stage, implementation=implementation, params=with_request(p, request),
                          needs_data=list(settled.needs_data), notes=[*notes, *described.notes])

    def _resolve_recipe(self, p: QuantizationParams, ctx: CompileContext) -> tuple[str, str]:
        """The recipe, 'cnn' or 'transformer' when it can be told cheaply now, and the note saying why.

        A Hugging Face source is a transformer; an ONNX file's graph is read (structure only, no external
        weights) for attention blocks; a torch model's modules for attention layers. Otherwise the choice
        is left to apply time (the recipe stays 'auto') and recorded in the step's details there.
        """
        if p.recipe != "auto":
            return p.recipe, f"recipe {p.recipe!r}: set in params"
        from edgecraft.plugins.quantization.recipes import detect_onnx

        kind, path = ctx.plan.model.kind, getattr(ctx.plan.model, "path", None)
        if kind == "huggingface":
            return "transformer", "recipe 'transformer' (auto): the model source is a Hugging Face transformer"
        if kind == "onnx" and isinstance(path, str):
            try:
                found = detect_onnx((ctx.base_dir / path).resolve())
            except Exception as exc:  # an unreadable file is the source's error to report, not ours
                return "auto", ("recipe decided at apply time from the graph (the ONNX file could not be read now: "
                                f"{exc!r:.80})")
            return found.recipe, f"recipe {found.recipe!r} (auto): {found.reason}"
        if ctx.original_model is not None:
            from edgecraft.plugins.quantization.recipes import detect_torch

            try:
                torch_found: RecipeFinding | None = detect_torch(ctx.original_model().module)
            except Exception:  # loading the model is the source's job; decide from the graph later
                torch_found = None
            if torch_found is not None:
                return torch_found.recipe, f"recipe {torch_found.recipe!r} (auto): {torch_found.reason}"
        return "auto", "recipe decided at apply time from the exported graph (attention blocks -> 'transformer')"

    def _resolve_accuracy(self, p: QuantizationParams, ctx: CompileContext, notes: list[str]) -> bool:
        """Whether the step restores layers to float until the accuracy contract holds ('auto': when there is one)."""
        has_contract = ctx.has_accuracy_contract()
        if p.accuracy_aware.enabled == "on" and not has_contract:
            raise ctx.error("params.accuracy_aware.enabled is 'on' but the plan has no accuracy contract for "
                            "this target, so there is no drop to aim for",
                            hint="add an accuracy contract, or set accuracy_aware.enabled to 'auto' or 'off'")
        active = p.accuracy_aware.enabled == "on" or (p.accuracy_aware.enabled == "auto" and has_contract)
        if active:
            from edgecraft.plugins.quantization.accuracy import accuracy_contracts

            for contract in accuracy_contracts(ctx.plan, ctx.target.label):
                if contract.metric not in ctx.plan.evaluation.metrics:
                    raise ctx.error(f"the accuracy contract uses metric {contract.metric!r}, which "
                                    f"evaluation.metrics ({ctx.plan.evaluation.metrics}) does not compute",
                                    hint=f"add {contract.metric!r} to evaluation.metrics")
            notes.append(f"accuracy-aware: up to {p.accuracy_aware.max_evaluations} evaluations on the target, "
                         f"{p.accuracy_aware.group_size} layer(s) returned to float per step")
        return active

    # ------------------------------------------------------------------ run time
    def apply(self, step: ResolvedStep, model: ModelHandle, ctx: RunContext) -> StepResult:
        from edgecraft.plugins.quantization.calibration import CalibrationSource, ranking_feeds
        from edgecraft.plugins.quantization.restore import restore_by_backend, restore_by_loop

        params = QuantizationParams.model_validate(step.params)
        if params.mode == "qat":
            from edgecraft.plugins.quantization.qat.step import apply_qat

            return apply_qat(step, model, ctx)
        if params.mode == "fp16":
            from edgecraft.plugins.quantization.half import apply_fp16

            return apply_fp16(step, model, ctx)
        impl = ctx.implementation(Int8Implementation)
        request, recipe_details = self._recipe_at_apply(to_request(params), model, impl, ctx)
        calibration = CalibrationSource(ctx, request.calibration_dataset, request.calibration_samples)
        run = Int8Run(where=f"{ctx.step.where} on target {ctx.target.label!r}", step_label=ctx.step.label,
                      work_dir=ctx.step_dir(), threads=ctx.plan.latency.threads,
                      status=lambda message: ctx.progress.status(f"{ctx.step.where}: {message}"),
                      calibration=calibration)
        job = impl.prepare(model, request, run)
        details: dict[str, Any] = {**recipe_details, **job.details}
        settings = params.accuracy_aware
        if not job.request.accuracy_aware:
            result = job.build()
            if job.kept_by_params is not None:
                details["kept_float"] = job.kept_by_params
        elif job.accuracy_control is not None:
            result = restore_by_backend(job, ctx, model, settings, details)
        else:
            samples = ranking_feeds(ctx, calibration, request.calibration_dataset, settings.ranking_samples)
            result = restore_by_loop(job, ctx, job.build(), samples, settings, details)
        details.update(job.facts(result))
        check_changed(job.evidence(result), details, run.where)
        if params.float_precision == "fp16":
            from edgecraft.plugins.quantization.half import fallback_to_fp16

            result = fallback_to_fp16(result, ctx, details)
        return StepResult(result, details)

    @staticmethod
    def _recipe_at_apply(request: Int8Request, model: ModelHandle, impl: Int8Implementation,
                         ctx: RunContext) -> tuple[Int8Request, dict[str, Any]]:
        """Settle ``recipe: auto`` left open at compile time (a torch source) from the graph now; say so.

        ONNX graphs are read here (the interchange format every backend imports); a model in a backend's
        native format by the backend.
        """
        if request.recipe != "auto":
            reason = next((n for n in ctx.step.notes if n.startswith("recipe ")), f"recipe {request.recipe!r}")
            return request, {"recipe": request.recipe, "recipe_reason": reason}
        if isinstance(model, OnnxModel):
            from edgecraft.plugins.quantization.recipes import detect_onnx

            found: RecipeFinding | None = detect_onnx(model.path)
        else:
            found = impl.detect_recipe(model)
        if found is None:
            raise InputError(f"{ctx.step.where}: the recipe of a {model.stage}-stage model cannot be told on target "
                             f"{ctx.target.label!r}", hint="set params.recipe to 'cnn' or 'transformer'")
        return (dataclasses.replace(request, recipe=found.recipe),
                {"recipe": found.recipe, "recipe_reason": f"decided at apply time from the graph: {found.reason}"})


#: Below this size a quantized graph may grow from its quantize/dequantize nodes alone (a test model of a few KB):
#: noted in the step's details; above it, growth means the int8 weights do not pay for themselves, an error.
GROWTH_ERROR_MIN_BYTES = 1 << 20


def check_changed(evidence: Int8Evidence | None, details: dict[str, Any], where: str) -> None:
    """A quantization that quantized nothing, or made the model bigger, is an error (exit 2) naming the step, the
    target and why, never a silent float artifact that only fails contracts later (issue 26: Silero VAD's
    "int8" artifact had no int8 weight and was larger and slower). ``None``: the backend cannot tell."""
    if evidence is None:
        return
    if evidence.int8 == 0:
        kept = details.get("kept_float") or []
        why = (f"every quantized layer was returned to float ({len(kept)} kept in float) by the accuracy-aware "
               "search: int8 cannot meet the accuracy contract here" if kept and details.get("accuracy_aware")
               else evidence.why_none or "the backend's quantizer left everything in float")
        raise InputError(f"{where}: the quantization step changed nothing: the result has no {evidence.what} "
                         f"({why})", hint="remove the quantization step for this model or target, or give it what "
                         "it can quantize (an export without control-flow subgraphs, fewer keep_float entries, a "
                         "looser accuracy contract)")
    before, after = evidence.bytes_before, evidence.bytes_after
    if before and after and after > before and before < GROWTH_ERROR_MIN_BYTES:
        details["size_note"] = (f"the int8 graph is larger than the float one ({before:,} -> {after:,} bytes): on a "
                                "model this small, quantize/dequantize nodes outweigh the int8 weights")
    elif before and after and after > before:
        raise InputError(f"{where}: the quantization step made the model bigger ({before:,} -> {after:,} bytes) with "
                         f"only {evidence.int8} {evidence.what}: quantize/dequantize overhead outweighs the int8 "
                         "weights", hint="keep this model in float on this target, or quantize a model whose "
                         "weights dominate its size")
