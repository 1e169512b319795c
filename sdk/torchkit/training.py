"""The one training loop of edgecraft's torch-stage strategies: :func:`train`.

Fine-tuning after pruning, recovery after factorization and distillation are the same loop with a
different objective (:mod:`edgecraft.torchkit.objectives`); the loop is written once here because
torch has optimizers and schedulers but no loop (epochs, validation, early stopping, keeping the
best weights). What it does, once for all of them:

* **seeds** — everything random (shuffling, augmentation, the validation split, dropout) derives
  from ``config.seed``, inside ``torch.random.fork_rng`` so the caller's RNG state is untouched:
  the same seed gives the same weights;
* **optimizer and schedule** — Adam, AdamW or SGD (momentum); cosine, step or no LR schedule,
  stepped per epoch, or ``warmup_cosine``: a linear warm-up over the first ``warmup`` fraction of
  all optimizer steps, then a cosine decay to zero, stepped per batch (the BERT fine-tuning
  schedule: a per-epoch cosine over two or three epochs barely decays, and a full learning rate on
  the first steps of a pretrained transformer's recovery undoes part of what it knows);
  gradient-norm clipping when ``grad_clip`` is set;
* **padding** — ``trim_padding`` (token inputs with an ``attention_mask``): batches of similar
  lengths, each cut to its longest sample (:meth:`TorchData.batches`), which is exact for models
  that mask padding and saves most of the compute on short sentences padded to a fixed length;
* **validation and early stopping** — on ``validation`` data, else a seeded ``validation_fraction``
  split of the training data; the monitored value is top-1 accuracy when the validation data has
  labels (ties broken by the lower validation loss), else the validation loss; training stops
  after ``patience`` epochs without improvement, and the best epoch's weights are restored;
* **BatchNorm** — ``batchnorm: train`` (default) updates running statistics like any training
  run; ``batchnorm: freeze`` keeps the layers in eval mode, so the model keeps the statistics it
  was trained with: a short recovery on a few small batches would otherwise replace statistics
  estimated on the whole training set with noisy ones (the usual practice when fine-tuning a
  compressed model). Scoring gradients (:mod:`.gradients`) always runs in eval mode;
* **sparsity** — ``keep_zeros`` re-applies each weight tensor's zero pattern after every step, so
  fine-tuning a sparse model keeps it sparse.
"""

from __future__ import annotations

import copy
import fnmatch
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from edgecraft.progress import NullProgress, Progress
from edgecraft.torchkit.data import Batch, TorchData, outputs_of
from edgecraft.torchkit.objectives import Objective
from edgecraft.torchkit.onednn_guard import strided_pointwise_guard
from torch import nn


@dataclass(frozen=True)
class TrainConfig:
    """Loop settings. Defaults: a plain Adam fine-tune, no schedule, no validation."""

    epochs: int = 1
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    weight_decay: float = 0.0
    momentum: float = 0.9
    schedule: Literal["none", "cosine", "step", "warmup_cosine"] = "none"
    #: ``warmup_cosine``: fraction of all optimizer steps spent warming the learning rate up from 0.
    warmup: float = 0.06
    step_size: int = 10
    gamma: float = 0.1
    validation_fraction: float = 0.0
    patience: int | None = None
    monitor: Literal["auto", "loss", "accuracy"] = "auto"
    seed: int = 0
    batchnorm: Literal["train", "freeze"] = "train"
    grad_clip: float | None = None
    keep_zeros: bool = False
    trim_padding: bool = False
    #: fnmatch patterns of parameter names left untrained (e.g. ``*embeddings.*``: a compressed transformer
    #: keeps the original token embeddings, and skipping their dense gradient and optimizer state saves time).
    freeze: tuple[str, ...] = ()


@dataclass
class TrainResult:
    """What happened while training (the module itself was trained in place)."""

    history: list[dict[str, float | None]]
    best_epoch: int
    stopped_early: bool
    monitor: str | None
    best_value: float | None
    train_size: int
    validation_size: int
    seconds: float
    used_labels: bool
    validation: TorchData | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def final_loss(self) -> float | None:
        """Mean training loss of the last epoch (None when no epoch ran)."""
        return self.history[-1]["train_loss"] if self.history else None

    def summary(self) -> dict[str, Any]:
        """JSON-friendly facts for a step's details."""
        return {
            "epochs_run": len(self.history),
            "best_epoch": self.best_epoch,
            "stopped_early": self.stopped_early,
            "monitor": self.monitor,
            "best_value": self.best_value,
            "final_train_loss": self.final_loss,
            "used_labels": self.used_labels,
            "train_size": self.train_size,
            "validation_size": self.validation_size,
            "train_seconds": round(self.seconds, 2),
            **self.extra,
        }


def make_optimizer(config: TrainConfig, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    # foreach: one multi-tensor update instead of a Python loop over tensors (torch picks it on GPUs only).
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, foreach=True)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, foreach=True)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def make_schedule(config: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int = 1) -> Any:
    """The LR scheduler (None for 'none'); ``warmup_cosine`` is stepped per batch, the others per epoch."""
    if config.schedule == "warmup_cosine":
        total = max(1, config.epochs * steps_per_epoch)
        warm = min(total - 1, round(config.warmup * total))

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / (warm + 1)
            progress = (step - warm) / max(1, total - warm)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_size, gamma=config.gamma)
    return None


def set_mode(module: nn.Module, config: TrainConfig) -> None:
    """Train mode, except BatchNorm layers when ``config.batchnorm`` is 'freeze' (see the module doc)."""
    module.train()
    if config.batchnorm == "freeze":
        for sub in module.modules():
            if isinstance(sub, nn.modules.batchnorm._BatchNorm):
                sub.eval()


def _zero_masks(module: nn.Module) -> list[tuple[nn.Parameter, torch.Tensor]]:
    masks = []
    for p in module.parameters():
        if p.dim() > 1:
            mask = p.detach() != 0
            if not bool(mask.all()):
                masks.append((p, mask))
    return masks


def train(module: nn.Module, data: TorchData, objective: Objective, config: TrainConfig, *,
          validation: TorchData | None = None, progress: Progress | None = None, label: str = "train",
          extra_modules: nn.Module | None = None, augment: Callable[[Batch, torch.Generator], Batch] | None = None,
          after_step: Callable[[], None] | None = None) -> TrainResult:
    """Train ``module`` in place on ``data`` to minimise ``objective``; return the history.

    ``extra_modules`` are trained alongside (e.g. feature adapters) and discarded by the caller;
    ``augment(batch, generator)`` transforms training batches (set ``batch.augmented``);
    ``after_step`` runs after every optimizer step.
    """
    progress = progress or NullProgress()
    started = time.perf_counter()
    # Frozen parameters get no gradient at all (not merely no update): no backward work for them.
    frozen = [p for name, p in module.named_parameters()
              if p.requires_grad and any(fnmatch.fnmatchcase(name, f) for f in config.freeze)]
    for p in frozen:
        p.requires_grad_(False)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            with strided_pointwise_guard(module):
                return _train(module, data, objective, config, validation, progress, label, extra_modules, augment,
                              after_step, started)
    finally:
        for p in frozen:
            p.requires_grad_(True)


def _train(module: nn.Module, data: TorchData, objective: Objective, config: TrainConfig,
           validation: TorchData | None, progress: Progress, label: str, extra_modules: nn.Module | None,
           augment: Callable[[Batch, torch.Generator], Batch] | None, after_step: Callable[[], None] | None,
           started: float) -> TrainResult:
    train_data, val = (data, validation) if validation is not None else data.split(config.validation_fraction,
                                                                                    config.seed)
    masks = _zero_masks(module) if config.keep_zeros else []
    extra = extra_modules if extra_modules is not None else nn.ModuleList()
    trainable = [p for p in module.parameters() if p.requires_grad] + list(extra.parameters())
    optimizer = make_optimizer(config, trainable)
    n_batches = math.ceil(len(train_data) / train_data.bound.effective_batch(config.batch_size))
    schedule = make_schedule(config, optimizer, n_batches)
    per_step = config.schedule == "warmup_cosine"
    generator = torch.Generator().manual_seed(config.seed)
    monitor = None
    if val is not None:
        monitor = config.monitor if config.monitor != "auto" else ("accuracy" if val.labeled else "loss")
        if monitor == "accuracy" and not val.labeled:
            raise ValueError(f"monitor: accuracy needs labels in the validation data ({val.name!r})")

    history: list[dict[str, float | None]] = []
    best_value: float | None = None
    best_loss = math.inf
    best_state: dict[str, torch.Tensor] | None = None
    best_epoch, stale, stopped_early = 0, 0, False
    note = ""
    for epoch in range(1, config.epochs + 1):
        set_mode(module, config)
        extra.train()
        sums: dict[str, float] = {"loss": 0.0}
        seen = 0
        batches = train_data.batches(config.batch_size, shuffle=True, generator=generator,
                                     trim=config.trim_padding)
        for batch in progress.track(batches, total=n_batches, description=f"{label} {epoch}/{config.epochs}{note}"):
            if augment is not None:
                batch = augment(batch, generator)
            loss = objective(outputs_of(module(*batch.inputs)), batch, train=True)
            optimizer.zero_grad(set_to_none=True)
            loss.total.backward()
            if config.grad_clip is not None:
                nn.utils.clip_grad_norm_(trainable, config.grad_clip)
            optimizer.step()
            if per_step:
                schedule.step()
            if masks:
                with torch.no_grad():
                    for p, mask in masks:
                        p.mul_(mask)
            if after_step is not None:
                after_step()
            n = len(batch)
            seen += n
            sums["loss"] += float(loss.total.detach()) * n
            for key, value in loss.parts.items():
                sums[key] = sums.get(key, 0.0) + value * n
        epoch_lr = optimizer.param_groups[0]["lr"]
        if schedule is not None and not per_step:
            schedule.step()
        row: dict[str, float | None] = {"epoch": float(epoch), "lr": epoch_lr,
                                        "train_loss": sums["loss"] / max(seen, 1)}
        for part in objective.parts:
            row[f"{part}_loss"] = sums[part] / seen if part in sums and seen else None
        row["val_loss"], row["val_accuracy"] = None, None
        if val is not None:
            val_loss, val_acc = validate(module, val, objective, config.batch_size)
            row["val_loss"], row["val_accuracy"] = val_loss, val_acc
            value = val_acc if monitor == "accuracy" else val_loss
            assert value is not None
            if monitor == "accuracy":
                # A small validation split ties often; the lower validation loss breaks the tie.
                better = best_value is None or value > best_value or (value == best_value and val_loss < best_loss)
            else:
                better = best_value is None or value < best_value
            if better:
                best_value, best_loss, best_epoch, stale = value, val_loss, epoch, 0
                best_state = copy.deepcopy(module.state_dict())
            else:
                stale += 1
        else:
            best_epoch = epoch
        history.append(row)
        note = f" · loss {row['train_loss']:.4f}"
        if row["val_loss"] is not None:
            note += f" · val {row['val_loss']:.4f}"
        if row["val_accuracy"] is not None:
            note += f" · val acc {row['val_accuracy']:.3f}"
        progress.status(f"{label} epoch {epoch}/{config.epochs}{note}")
        if config.patience is not None and monitor is not None and stale >= config.patience:
            stopped_early = epoch < config.epochs
            break
    if best_state is not None:
        module.load_state_dict(best_state)
    module.zero_grad(set_to_none=True)
    module.eval()
    facts = {**objective.summary(), **({"kept_zero_tensors": len(masks)} if masks else {})}
    return TrainResult(history=history, best_epoch=best_epoch, stopped_early=stopped_early, monitor=monitor,
                       best_value=best_value, train_size=len(train_data),
                       validation_size=0 if val is None else len(val), seconds=time.perf_counter() - started,
                       used_labels=train_data.labeled and _uses_labels(objective), validation=val, extra=facts)


def _uses_labels(objective: Objective) -> bool:
    return getattr(objective, "alpha", 0.0) is not None


@torch.no_grad()
def validate(module: nn.Module, data: TorchData, objective: Objective, batch_size: int) -> tuple[float, float | None]:
    """Mean loss (training-only terms such as feature losses left out) and top-1 accuracy when labeled."""
    module.eval()
    total, correct = 0.0, 0
    for batch in data.batches(batch_size):
        outputs = outputs_of(module(*batch.inputs))
        total += float(objective(outputs, batch, train=False).total) * len(batch)
        if batch.labels is not None:
            correct += int((outputs[objective.output].argmax(dim=-1) == batch.labels).sum())
    n = len(data)
    return total / n, (correct / n if data.labeled else None)
