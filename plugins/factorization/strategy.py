"""The ``factorization`` strategy: bind params at compile time, factorize (and recover) at run time."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from edgecraft.errors import InputError
from edgecraft.models import Stage, TorchModel
from edgecraft.plugins.factorization.params import FactorizationParams
from edgecraft.strategy import Resolution, ResolvedStep, StepResult, Strategy

if TYPE_CHECKING:
    from edgecraft.context import CompileContext, RunContext
    from edgecraft.models import ModelHandle

_MODES = ("rank", "ratio", "energy", "target")


def _unit_interval(ctx: CompileContext, name: str, value: float | None, *, closed_low: bool = False) -> None:
    if value is None:
        return
    low_ok = value >= 0 if closed_low else value > 0
    if not (low_ok and value <= 1):
        raise ctx.error(f"params.{name} = {value:g} is outside (0, 1]",
                        hint=f"{name} is a fraction: 0.5 keeps half" + (" (a target above 1 would grow the model)"
                                                                        if name == "target" else ""))


class FactorizationStrategy(Strategy[FactorizationParams]):
    name = "factorization"
    params_model = FactorizationParams
    summary = "Low-rank factorization: truncated SVD (Linear), spatial SVD or Tucker-2 (Conv2d), per-layer ranks"

    # ------------------------------------------------------------------ compile time
    @classmethod
    def default_space(cls, params: FactorizationParams) -> dict[str, dict[str, Any]]:
        """What `edgecraft search` explores for this step when the plan names no space (see space.py)."""
        from edgecraft.plugins.factorization.space import default_space

        return default_space(params)

    def resolve(self, params: FactorizationParams, ctx: CompileContext) -> Resolution:
        p = params
        if ctx.model_kind != "torch":
            raise ctx.error("factorization rewrites torch layers, but the plan's model is an ONNX file",
                            hint="use a torch model source (model.kind: torch, factory: 'pkg.mod:fn')")
        set_modes = [m for m in _MODES if getattr(p, m) is not None]
        if len(set_modes) > 1:
            raise ctx.error(f"set only one of rank / ratio / energy / target (got {', '.join(set_modes)})")
        selection = p.selection or (set_modes[0] if set_modes else "energy")
        if set_modes and set_modes[0] != selection:
            raise ctx.error(f"params.selection = {selection!r} but params.{set_modes[0]} is set",
                            hint=f"set params.{selection} (or drop params.selection)")
        if p.rank is not None and p.rank < 1:
            raise ctx.error(f"params.rank = {p.rank}: a rank must be at least 1 (rank 0 would delete the layer)")
        for name in ("ratio", "energy", "target"):
            _unit_interval(ctx, name, getattr(p, name))
        if selection == "rank" and p.rank is None:
            raise ctx.error("selection 'rank' needs params.rank (an integer >= 1)")
        defaults = {"ratio": 0.5, "energy": 0.9}
        filled: dict[str, Any] = {"selection": selection}
        if selection in defaults and getattr(p, selection) is None:
            filled[selection] = defaults[selection]
        if selection == "target" and p.target is None:
            raise ctx.error("selection 'target' needs params.target (fraction of the model's cost to keep, in (0, 1])")
        if not p.candidates or any(not 0 < c < 1 for c in p.candidates):
            raise ctx.error(f"params.candidates = {p.candidates}: give fractions of full rank strictly between 0 and 1")
        if p.cost == "latency" and p.latency == "none":
            raise ctx.error("cost: latency needs measured latencies: set params.latency to 'ort' or 'torch'")
        if selection != "target" and p.cost == "latency":
            raise ctx.error("cost: latency is only used by the target selection", hint="set params.target")

        needs: list[str] = []
        notes: list[str] = []
        if selection == "target":
            data = p.sensitivity_data or ctx.plan.evaluation.dataset
            filled["sensitivity_data"] = ctx.require_dataset(data, "target rank selection (sensitivity analysis)",
                                                             param="sensitivity_data")
            needs.append(filled["sensitivity_data"])
        elif p.sensitivity_data is not None:
            needs.append(ctx.require_dataset(p.sensitivity_data, "loss reporting", param="sensitivity_data"))
        if p.recover != "none":
            filled["train"] = ctx.require_dataset(p.train, f"recover: {p.recover}", param="train")
            needs.append(filled["train"])
            if p.recover == "distill":
                notes.append("recovery distils from the plan's original model")
        elif p.train is not None:
            raise ctx.error("params.train is set but recover is 'none'", hint="set recover: finetune or distill")
        if p.recover != "distill" and ("recover_loss" in p.model_fields_set or p.hidden_weight):
            raise ctx.error("params.recover_loss / hidden_weight only apply to recover: distill")
        p = params.model_copy(update=filled)  # the plan's params stay as written; the resolved ones are filled in
        if p.method == "activation_aware" and p.sensitivity_data is None and p.train is None:
            raise ctx.error("params.method = 'activation_aware' measures the Linear layers' inputs on calibration "
                            "data, and this step names none",
                            hint="set params.sensitivity_data (or params.train with a recovery) to a training "
                                 "dataset of the plan")
        if p.whitening != "one_shot" and p.method == "svd":
            raise ctx.error(f"params.whitening = {p.whitening!r} refits activation-aware factors, but params.method "
                            "is 'svd'", hint="set params.method to 'activation_aware' (or 'auto' on a transformer "
                                             "encoder), or drop params.whitening")
        if p.method != "svd" and (p.sensitivity_data or p.train):
            notes.append("Linear layers: activation-aware SVD (inputs' second moment on "
                         f"{p.sensitivity_data or p.train}, {p.calibration_samples} samples)"
                         + (" when the model has a transformer encoder" if p.method == "auto" else "")
                         + (f"; {p.whitening} whitening in forward order" if p.whitening != "one_shot" else ""))

        value = getattr(p, selection)
        detail = f"greedy target {value:g} of {p.cost}" if selection == "target" else f"{selection} {value:g}"
        implementation = f"lowrank-{p.conv_method}/{detail}" + (f"/{p.method}" if p.method != "auto" else "")
        implementation += f"/{p.whitening}" if p.whitening != "one_shot" else ""
        implementation += f"+{p.recover}" if p.recover != "none" else ""
        if p.latency != "none":
            notes.append(f"candidates not faster than the original layer on {p.latency} are dropped")
        return Resolution(stage=Stage.TORCH, implementation=implementation, params=p,
                          needs_data=list(dict.fromkeys(needs)), notes=notes)

    # ------------------------------------------------------------------ run time
    def apply(self, step: ResolvedStep, model: ModelHandle, ctx: RunContext) -> StepResult:
        from edgecraft.plugins.factorization.engine import FactorizationConfig, factorize_model
        from edgecraft.plugins.factorization.recovery import distill_from, finetune
        from edgecraft.plugins.factorization.selection import TargetUnreachable
        from edgecraft.torchkit.data import step_data
        from edgecraft.torchkit.evaluation import evaluate

        p = self.params_of(step)
        if not isinstance(model, TorchModel):
            raise InputError(f"step {step.where}: factorization needs a torch model, got a {model.stage} model")
        config = FactorizationConfig(
            conv_method=p.conv_method, selection=p.selection or "energy", energy=p.energy or 0.9,
            ratio=p.ratio or 0.5, rank=p.rank, target=p.target, cost=p.cost, multiple=p.multiple,
            candidates=tuple(p.candidates), latency=p.latency, include=tuple(p.include), exclude=tuple(p.exclude),
            threads=ctx.plan.latency.threads, calibration_samples=p.calibration_samples,
            whitening=p.whitening)
        output = model.io.output_index(ctx.plan.evaluation.output) if model.io.outputs else 0

        data = None
        if p.sensitivity_data is not None:
            data = step_data(ctx, p.sensitivity_data, "sensitivity_data").take(p.sensitivity_samples)
        example = model.example_inputs(1)
        # The whitening statistics read their own `calibration_samples` of the sensitivity data (else of the
        # training data), not the sensitivity subset: whitening fitted to 32 sentences generalizes poorly.
        calibration_name, calibration_param = ((p.sensitivity_data, "sensitivity_data") if p.sensitivity_data
                                               else (p.train, "train"))
        calibration = (step_data(ctx, calibration_name, calibration_param).take(p.calibration_samples)
                       if calibration_name is not None else None)
        linear_method = p.method
        if linear_method == "auto":
            from edgecraft.torchkit.encoder import find_encoder

            linear_method = "activation_aware" if calibration is not None and find_encoder(model.module) else "svd"
        if p.whitening != "one_shot" and linear_method != "activation_aware":
            raise InputError(f"step {step.where}: params.whitening = {p.whitening!r} refits activation-aware "
                             "factors, but method 'auto' chose plain SVD (the model has no transformer encoder)",
                             hint="set params.method: activation_aware, or drop params.whitening")
        config = replace(config, linear_method=linear_method)
        ctx.progress.status(f"{step.where}: factorizing ({step.implementation})")
        try:
            result = factorize_model(model.module, example, config, data, output=output, calibration=calibration)
        except TargetUnreachable as exc:
            raise InputError(f"step {step.where}: params.target = {p.target:g} of {p.cost} cannot be reached: {exc}",
                             hint="raise the target, add smaller params.candidates, lower params.multiple or "
                                  "widen params.include") from None
        if not result.layers:
            raise InputError(f"step {step.where}: no Linear/Conv2d layer matches include={p.include} "
                             f"exclude={p.exclude}", hint="layer names are those of model.named_modules()")

        details: dict[str, Any] = result.summary()
        details["linear_method"] = linear_method
        if p.recover != "none" and result.factorized:
            assert p.train is not None
            train = step_data(ctx, p.train, "train")
            ctx.progress.status(f"{step.where}: recovery ({p.recover}, {p.epochs} epochs)")
            try:
                if p.recover == "finetune":
                    details["recovery"] = finetune(result.module, train, epochs=p.epochs, lr=p.lr,
                                                   batch_size=p.batch_size, seed=ctx.seed, output=output,
                                                   progress=ctx.progress)
                else:
                    if ctx.original_model is None:
                        raise InputError(f"step {step.where}: recover: distill needs the plan's original torch model")
                    teacher = ctx.original_model().module.eval()
                    probe = data if data is not None else train.take(256)
                    cos_before = evaluate(result.module, probe, output=output, teacher=teacher).get("cosine")
                    details["recovery"] = distill_from(teacher, result.module, train, epochs=p.epochs, lr=p.lr,
                                                       batch_size=p.batch_size, seed=ctx.seed, output=output,
                                                       progress=ctx.progress, loss=p.recover_loss,
                                                       hidden_weight=p.hidden_weight)
                    cos_after = evaluate(result.module, probe, output=output, teacher=teacher).get("cosine")
                    details["cosine_before_recovery"] = round(float(cos_before or 0.0), 5)
                    details["cosine_after_recovery"] = round(float(cos_after or 0.0), 5)
                    details["cosine_measured_on"] = (f"{probe.name}: {len(probe)} samples, torch outputs vs the "
                                                     "original model's")
            except ValueError as exc:
                raise InputError(f"step {step.where}: recovery failed: {exc}") from exc
            if data is not None:
                from edgecraft.plugins.factorization.engine import LossMeter

                details["eval_loss_after_recovery"] = LossMeter(model.module, data, output=output)(result.module)
        handle = model.with_module(result.module)
        handle.lineage.append({"step": step.where, "strategy": self.name,
                               "factorized": {row.name: list(row.chosen.ranks) for row in result.factorized},
                               "params_ratio": details["params_ratio"], "macs_ratio": details["macs_ratio"]})
        return StepResult(handle, details)
