"""The QAT run: calibrate the ranges, fine-tune with int8 simulated through the shared trainer, fix int8 weights.

Loss (``qat.loss``): distillation from the float model (the step's input, so what pruning, distillation or
factorization made is what QAT preserves) by temperature KL, the default and the only choice for data
without labels; mixed half and half with cross-entropy when the data has labels ('auto'); or labels only.
Activation ranges follow the data by EMA for the first ``freeze_ranges_after`` share of the optimizer steps,
then freeze, so the last steps train the weights against the exact ranges the exported graph carries.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from edgecraft import torchkit
from edgecraft.context import RunContext
from edgecraft.errors import InputError
from edgecraft.models import TorchModel
from edgecraft.plugins.quantization.params import QuantizationParams
from edgecraft.plugins.quantization.qat.prepare import NotTraceable, Prepared, finalize, prepare, set_phase
from torch import nn


def _accuracy(module: nn.Module, data: torchkit.TorchData | None, teacher: torch.Tensor | None,
              output: int) -> dict[str, float]:
    if data is None:
        return {}
    metrics = torchkit.evaluate(module, data, output=output, teacher=teacher)
    return {k: round(v, 6) for k, v in metrics.items() if k in ("accuracy", "agreement")}


def run_qat(model: TorchModel, p: QuantizationParams, ctx: RunContext) -> tuple[nn.Module, dict[str, Any]]:
    """The trained, finalized module and the step's details."""
    where = ctx.step.where
    q = p.qat
    assert q.dataset is not None and p.calibration_dataset is not None  # settled at compile time
    output = ctx.io.output_index(ctx.plan.evaluation.output)
    teacher_module = model.copy().module.eval()
    try:
        prepared = prepare(model.copy().module, per_channel=p.per_channel)
    except NotTraceable as exc:
        raise InputError(f"{where}: mode 'qat' places int8 simulation by tracing the model with torch.fx, which "
                         f"failed: {exc}", hint="make forward() traceable (no data-dependent Python control "
                         "flow), or use params.mode 'static'") from None
    train = torchkit.step_data(ctx, q.dataset, "qat.dataset")
    calibration = torchkit.step_data(ctx, p.calibration_dataset, "calibration_dataset").take(p.calibration_samples)
    evaluation = (torchkit.step_data(ctx, ctx.plan.evaluation.dataset, "evaluation.dataset")
                  if ctx.plan.evaluation.dataset is not None else None)
    reference = torchkit.predict(teacher_module, evaluation, output=output) if evaluation is not None else None

    ctx.progress.status(f"{where}: QAT: calibrating {len(prepared.activations)} activation ranges")
    set_phase(prepared, "calibrate")
    with torch.no_grad():
        for batch in calibration.batches(64):
            prepared.module(*batch.inputs)
    set_phase(prepared, "frozen")
    before = _accuracy(prepared.module, evaluation, reference, output)  # = post-training int8, simulated
    measured = _on_target(ctx, model, prepared, "ptq_same_scheme")

    set_phase(prepared, "observe")
    objective = _objective(q.loss, teacher_module, train, q.temperature, output, where)
    steps_per_epoch = math.ceil(len(train) / q.batch_size)
    freeze_at = max(1, round(q.freeze_ranges_after * q.epochs * steps_per_epoch))
    done = [0]

    def after_step() -> None:
        done[0] += 1
        if done[0] == freeze_at:
            set_phase(prepared, "frozen")

    config = torchkit.TrainConfig(epochs=q.epochs, batch_size=q.batch_size, lr=q.lr, schedule="cosine",
                                  seed=ctx.seed)
    result = torchkit.train(prepared.module, train, objective, config, progress=ctx.progress,
                            label=f"{where} QAT", after_step=after_step)
    set_phase(prepared, "frozen")
    after = _accuracy(prepared.module, evaluation, reference, output)
    module = finalize(prepared)
    measured.update(_on_target(ctx, model, None, "qat", module))
    details = {
        "qat": {"epochs": q.epochs, "loss": _loss_name(q.loss, train), "dataset": q.dataset, "lr": q.lr,
                "ranges_frozen_after_steps": freeze_at, **result.summary()},
        "int8_scheme": {"weights": f"int8 symmetric {'per-channel' if p.per_channel else 'per-tensor'}",
                        "activations": "uint8 per-tensor, EMA then frozen",
                        "layers": len(prepared.weights), "activation_quantizers": len(prepared.activations)},
        # Torch-side, int8 simulated (the runtimes' own figures are the run's measurements on each target).
        "torch_simulated": {"dataset": ctx.plan.evaluation.dataset, "float": _accuracy(teacher_module, evaluation,
                                                                                        reference, output),
                            "int8_before_qat": before, "int8_after_qat": after},
        # On the runtime of the target that ran this step (the torch stage is shared: another target reuses it).
        "measured_on_target": measured,
        "activation_ranges": _ranges(prepared),
    }
    return module, details


def _on_target(ctx: RunContext, model: TorchModel, prepared: Prepared | None, key: str,
               module: nn.Module | None = None) -> dict[str, Any]:
    """Metrics of an int8 model on this step's target runtime: ``prepared`` as calibrated, before any training
    (post-training int8 with QAT's own scheme and ranges), or the finished ``module``."""
    if ctx.evaluator is None:
        return {}
    if module is None:
        assert prepared is not None
        module = finalize(copy.deepcopy(prepared))
    metrics = ctx.evaluate(TorchModel(module, model.io, list(model.lineage), dict(model.dynamic)))
    return {"target": ctx.target.label, key: {k: round(v, 6) for k, v in metrics.items()}}


def _loss_name(loss: str, data: torchkit.TorchData) -> str:
    if loss == "auto":
        return "distill+labels" if data.labeled else "distill"
    return loss


def _objective(loss: str, teacher: nn.Module, data: torchkit.TorchData, temperature: float, output: int,
               where: str) -> Any:
    if loss == "labels":
        if not data.labeled:
            raise InputError(f"{where}: params.qat.loss 'labels' but dataset {data.name!r} has no labels",
                             hint="use params.qat.loss 'distill' (or 'auto')")
        return torchkit.CrossEntropy(output)
    alpha = 0.5 if (loss == "auto" and data.labeled) else None
    return torchkit.TeacherMatch(torchkit.Teacher(teacher, output=output), kind="kl", temperature=temperature,
                                 alpha=alpha, output=output)


def _ranges(prepared: Prepared) -> dict[str, Any]:
    items = list(prepared.activations.items())
    shown = dict(items[:4] + items[-2:]) if len(items) > 6 else dict(items)
    return {name: quant.facts() for name, quant in shown.items()}
