"""The distillation training loop, usable on its own: ``distill(teacher, student, dataset, params)``.

This is the piece other code reuses for recovery (fine-tune a pruned or factorized model against
the original one): it knows nothing about plans, only torch modules and an
:class:`edgecraft.datasets.Dataset`.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from edgecraft.datasets import Dataset
from edgecraft.plugins.distillation.losses import FeatureAdapter, distillation_loss
from edgecraft.plugins.distillation.params import FeaturePair, TrainingParams
from edgecraft.progress import NullProgress, Progress
from torch import nn

#: Teacher outputs (logits and features) are cached only while they fit in this many bytes.
CACHE_BUDGET_BYTES = 1 << 30
_NOISE_STD = 0.05


class DistillationError(ValueError):
    """Bad inputs to :func:`distill` (layer names, label range, augmentation on flat data, ...)."""


@dataclass
class DistillResult:
    """The trained student and what happened while training it."""

    student: nn.Module
    history: list[dict[str, float | None]]
    best_epoch: int
    stopped_early: bool
    teacher_cached: bool
    used_labels: bool
    monitor: str | None
    best_value: float | None
    train_size: int
    validation_size: int
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-friendly facts for a report (the student module aside)."""
        last = self.history[-1] if self.history else {}
        return {
            "epochs_run": len(self.history),
            "best_epoch": self.best_epoch,
            "stopped_early": self.stopped_early,
            "monitor": self.monitor,
            "best_value": self.best_value,
            "final_train_loss": last.get("train_loss"),
            "teacher_cached": self.teacher_cached,
            "used_labels": self.used_labels,
            "train_size": self.train_size,
            "validation_size": self.validation_size,
            "train_seconds": round(self.seconds, 2),
            **self.extra,
        }


class _FeatureTap:
    """Keeps the latest output of named submodules (forward hooks), for feature distillation."""

    def __init__(self, model: nn.Module, names: list[str], *, role: str) -> None:
        modules = dict(model.named_modules())
        missing = [n for n in names if n not in modules]
        if missing:
            sample = [n for n in modules if n][:12]
            raise DistillationError(f"{role} has no layer named {missing} (its layers include {sample}"
                                    f"{' ...' if len(modules) > 13 else ''})")
        self.outputs: dict[str, torch.Tensor] = {}
        self._hooks = [modules[n].register_forward_hook(self._saver(n)) for n in names]

    def _saver(self, name: str) -> Any:
        def save(_module: nn.Module, _inputs: Any, output: Any) -> None:
            if not isinstance(output, torch.Tensor):
                raise DistillationError(f"layer {name!r} returns {type(output).__name__}, not a tensor")
            self.outputs[name] = output
        return save

    def close(self) -> None:
        for hook in self._hooks:
            hook.remove()


def _as_tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def _split(dataset: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset | None]:
    n_val = round(len(dataset) * fraction)
    if fraction <= 0 or n_val < 1 or n_val >= len(dataset):
        return dataset, None
    order = np.random.RandomState(seed).permutation(len(dataset))
    val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
    y = dataset.y
    return (Dataset(dataset.name, dataset.x[train_idx], None if y is None else y[train_idx]),
            Dataset(f"{dataset.name}[validation]", dataset.x[val_idx], None if y is None else y[val_idx]))


def _batches(n: int, batch_size: int, generator: torch.Generator | None) -> Iterator[torch.Tensor]:
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def _augment(x: torch.Tensor, kind: str, generator: torch.Generator) -> torch.Tensor:
    if kind == "noise":
        return x + _NOISE_STD * torch.randn(x.shape, generator=generator)
    if kind == "shift":
        # Per-sample shift of up to one step along each trailing (spatial) axis, zero-padded.
        spatial = x.dim() - 2
        pad = [1, 1] * spatial
        padded = nn.functional.pad(x, pad)
        offsets = torch.randint(0, 3, (x.shape[0], spatial), generator=generator)
        out = torch.empty_like(x)
        for i in range(x.shape[0]):
            index = [i, slice(None)] + [slice(int(o), int(o) + size) for o, size in zip(offsets[i], x.shape[2:],
                                                                                          strict=True)]
            out[i] = padded[tuple(index)]
        return out
    return x


class _Teacher:
    """Runs the teacher (eval mode, no grad) and optionally caches its outputs for a fixed dataset."""

    def __init__(self, teacher: nn.Module, pairs: list[FeaturePair]) -> None:
        self.module = teacher
        self.pairs = pairs
        self.tap = _FeatureTap(teacher, [p.teacher for p in pairs], role="the teacher") if pairs else None

    @torch.no_grad()
    def run(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        logits = self.module(x)
        if not isinstance(logits, torch.Tensor):
            raise DistillationError(f"the teacher returns {type(logits).__name__}; a single logits tensor is needed")
        feats = [self.tap.outputs[p.teacher].detach() for p in self.pairs] if self.tap else []
        return logits.detach(), feats

    def run_all(self, x: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        outs = [self.run(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)]
        logits = torch.cat([o[0] for o in outs])
        feats = [torch.cat([o[1][k] for o in outs]) for k in range(len(self.pairs))]
        return logits, feats

    def close(self) -> None:
        if self.tap:
            self.tap.close()


def _cache_bytes(logits: torch.Tensor, feats: list[torch.Tensor], n_samples: int) -> int:
    """Bytes the cached outputs for ``n_samples`` would take, from a probe batch's outputs."""
    per_sample = (logits.numel() + sum(f.numel() for f in feats)) * 4 // max(int(logits.shape[0]), 1)
    return per_sample * n_samples


def _make_optimizer(params: TrainingParams, trainable: list[nn.Parameter]) -> torch.optim.Optimizer:
    if params.optimizer == "adam":
        return torch.optim.Adam(trainable, lr=params.lr, weight_decay=params.weight_decay)
    if params.optimizer == "adamw":
        return torch.optim.AdamW(trainable, lr=params.lr, weight_decay=params.weight_decay)
    return torch.optim.SGD(trainable, lr=params.lr, momentum=params.momentum, weight_decay=params.weight_decay)


def _make_schedule(params: TrainingParams, optimizer: torch.optim.Optimizer) -> Any:
    if params.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=params.epochs)
    if params.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=params.step_size, gamma=params.gamma)
    return None


def _check_labels(y: np.ndarray | None, n_classes: int, name: str) -> None:
    if y is not None and len(y) and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise DistillationError(f"dataset {name!r} has labels in [{int(y.min())}, {int(y.max())}] but the teacher "
                                f"predicts {n_classes} classes")


def distill(teacher: nn.Module, student: nn.Module, dataset: Dataset,
            params: TrainingParams | dict[str, Any] | None = None, *, validation: Dataset | None = None,
            progress: Progress | None = None, seed: int = 0) -> DistillResult:
    """Train ``student`` (in place) to imitate ``teacher`` on ``dataset``; return it with its history.

    ``params`` holds the loss and loop settings (:class:`TrainingParams`; ``params.seed`` overrides
    ``seed``). Labels in ``dataset`` are mixed in by ``alpha``; without labels the soft loss alone
    is used. The best weights on the validation data (``validation``, else a split of
    ``dataset``) are kept. The same seed gives the same student.
    """
    params = params if isinstance(params, TrainingParams) else TrainingParams.model_validate(params or {})
    progress = progress or NullProgress()
    seed = params.seed if params.seed is not None else seed
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _distill(teacher, student, dataset, params, validation, progress, seed, started)


def _distill(teacher_module: nn.Module, student: nn.Module, dataset: Dataset, params: TrainingParams,
             validation: Dataset | None, progress: Progress, seed: int, started: float) -> DistillResult:
    if params.augment == "shift" and dataset.x.ndim < 3:
        raise DistillationError(f"augment: shift needs image or sequence inputs (samples of rank >= 2), dataset "
                                f"{dataset.name!r} has samples of shape {list(dataset.x.shape[1:])}")
    train, val = (dataset, validation) if validation is not None else _split(dataset, params.validation_fraction, seed)
    teacher_was_training = teacher_module.training
    teacher_module.eval()
    teacher = _Teacher(teacher_module, params.features)
    student_tap = _FeatureTap(student, [p.student for p in params.features], role="the student") \
        if params.features else None
    try:
        x_train = _as_tensor(train.x)
        y_train = torch.from_numpy(train.y) if train.y is not None else None
        probe_logits, probe_feats = teacher.run(x_train[:2])
        n_classes = int(probe_logits.shape[-1])
        _check_labels(train.y, n_classes, train.name)
        if val is not None:
            _check_labels(val.y, n_classes, val.name)

        adapters = nn.ModuleList()
        if params.features:
            student.eval()
            with torch.no_grad():
                student(x_train[:2])
            assert student_tap is not None
            for pair, t_feat in zip(params.features, probe_feats, strict=True):
                s_feat = student_tap.outputs[pair.student]
                try:
                    adapters.append(FeatureAdapter(tuple(s_feat.shape), tuple(t_feat.shape)))
                except ValueError as exc:
                    raise DistillationError(f"feature pair student {pair.student!r} -> teacher {pair.teacher!r}: "
                                            f"{exc}") from exc

        cache_ok = params.augment == "none" and params.cache_teacher
        if cache_ok:
            cache_ok = _cache_bytes(probe_logits, probe_feats, len(train)) <= CACHE_BUDGET_BYTES
        cached = teacher.run_all(x_train, params.batch_size) if cache_ok else None
        x_val = _as_tensor(val.x) if val is not None else None
        y_val = torch.from_numpy(val.y) if val is not None and val.y is not None else None
        val_teacher = teacher.run_all(x_val, params.batch_size)[0] if x_val is not None else None

        extra: dict[str, Any] = {}
        if val_teacher is not None and y_val is not None:
            extra["teacher_val_accuracy"] = float((val_teacher.argmax(dim=-1) == y_val).float().mean())

        masks: list[tuple[nn.Parameter, torch.Tensor]] = []
        if params.keep_zeros:
            for p in student.parameters():
                if p.dim() > 1:
                    mask = p.detach() != 0
                    if not bool(mask.all()):
                        masks.append((p, mask))

        trainable = [p for p in student.parameters() if p.requires_grad] + list(adapters.parameters())
        optimizer = _make_optimizer(params, trainable)
        schedule = _make_schedule(params, optimizer)
        generator = torch.Generator().manual_seed(seed)
        monitor = None
        if val is not None:
            monitor = params.monitor if params.monitor != "auto" else ("accuracy" if y_val is not None else "loss")
            if monitor == "accuracy" and y_val is None:
                raise DistillationError(f"monitor: accuracy needs labels in the validation data ({val.name!r})")

        history: list[dict[str, float | None]] = []
        best_value: float | None = None
        best_loss = math.inf
        best_state: dict[str, torch.Tensor] | None = None
        best_epoch, stale, stopped_early = 0, 0, False
        last_note = ""
        for epoch in range(1, params.epochs + 1):
            student.train()
            adapters.train()
            sums = {"loss": 0.0, "soft": 0.0, "hard": 0.0, "feature": 0.0}
            seen = 0
            n_batches = math.ceil(len(train) / params.batch_size)
            description = f"distill {epoch}/{params.epochs}{last_note}"
            for idx in progress.track(_batches(len(train), params.batch_size, generator), total=n_batches,
                                      description=description):
                xb = x_train[idx]
                yb = y_train[idx] if y_train is not None else None
                if cached is not None:
                    t_logits, t_feats = cached[0][idx], [f[idx] for f in cached[1]]
                else:
                    xb = _augment(xb, params.augment, generator)
                    t_logits, t_feats = teacher.run(xb)
                s_logits = student(xb)
                feature_loss = None
                if params.features:
                    assert student_tap is not None
                    terms = [pair.weight * nn.functional.mse_loss(adapter(student_tap.outputs[pair.student]), t_feat)
                             for pair, adapter, t_feat in zip(params.features, adapters, t_feats, strict=True)]
                    feature_loss = torch.stack(terms).sum()
                parts = distillation_loss(s_logits, t_logits, yb, kind=params.loss, temperature=params.temperature,
                                          alpha=params.alpha, feature_loss=feature_loss)
                optimizer.zero_grad(set_to_none=True)
                parts.total.backward()
                optimizer.step()
                if masks:
                    with torch.no_grad():
                        for p, mask in masks:
                            p.mul_(mask)
                n = int(idx.shape[0])
                seen += n
                sums["loss"] += float(parts.total.detach()) * n
                sums["soft"] += parts.soft * n
                sums["hard"] += (parts.hard or 0.0) * n
                sums["feature"] += (parts.feature or 0.0) * n
            epoch_lr = optimizer.param_groups[0]["lr"]
            if schedule is not None:
                schedule.step()
            row: dict[str, float | None] = {
                "epoch": float(epoch), "lr": epoch_lr,
                "train_loss": sums["loss"] / seen, "soft_loss": sums["soft"] / seen,
                "hard_loss": sums["hard"] / seen if y_train is not None else None,
                "feature_loss": sums["feature"] / seen if params.features else None,
                "val_loss": None, "val_accuracy": None}
            if x_val is not None and val_teacher is not None:
                val_loss, val_acc = _evaluate(student, x_val, y_val, val_teacher, params)
                row["val_loss"], row["val_accuracy"] = val_loss, val_acc
                value = val_acc if monitor == "accuracy" else val_loss
                assert value is not None
                if monitor == "accuracy":
                    # A small validation split ties often; the lower validation loss breaks the tie.
                    better = (best_value is None or value > best_value
                              or (value == best_value and val_loss < best_loss))
                else:
                    better = best_value is None or value < best_value
                if better:
                    best_value, best_loss, best_epoch, stale = value, val_loss, epoch, 0
                    best_state = copy.deepcopy(student.state_dict())
                else:
                    stale += 1
            else:
                best_epoch = epoch
            history.append(row)
            last_note = f" · loss {row['train_loss']:.4f}"
            if row["val_loss"] is not None:
                last_note += f" · val {row['val_loss']:.4f}"
            if row["val_accuracy"] is not None:
                last_note += f" · val acc {row['val_accuracy']:.3f}"
            progress.status(f"distill epoch {epoch}/{params.epochs}{last_note}")
            if params.patience is not None and monitor is not None and stale >= params.patience:
                stopped_early = epoch < params.epochs
                break
        if best_state is not None:
            student.load_state_dict(best_state)
        student.eval()
        return DistillResult(
            student=student, history=history, best_epoch=best_epoch, stopped_early=stopped_early,
            teacher_cached=cached is not None, used_labels=y_train is not None, monitor=monitor,
            best_value=best_value, train_size=len(train), validation_size=0 if val is None else len(val),
            seconds=time.perf_counter() - started,
            extra={**extra, "kept_zero_tensors": len(masks)} if masks else extra)
    finally:
        teacher.close()
        if student_tap is not None:
            student_tap.close()
        teacher_module.train(teacher_was_training)


@torch.no_grad()
def _evaluate(student: nn.Module, x: torch.Tensor, y: torch.Tensor | None, teacher_logits: torch.Tensor,
              params: TrainingParams) -> tuple[float, float | None]:
    """Validation loss (logit terms only; feature adapters are a training aid) and accuracy."""
    student.eval()
    total, correct = 0.0, 0
    for start in range(0, x.shape[0], params.batch_size):
        stop = start + params.batch_size
        logits = student(x[start:stop])
        yb = y[start:stop] if y is not None else None
        parts = distillation_loss(logits, teacher_logits[start:stop], yb, kind=params.loss,
                                  temperature=params.temperature, alpha=params.alpha)
        total += float(parts.total) * logits.shape[0]
        if yb is not None:
            correct += int((logits.argmax(dim=-1) == yb).sum())
    n = x.shape[0]
    return total / n, (correct / n if y is not None else None)


def accuracy(model: nn.Module, dataset: Dataset, batch_size: int = 256) -> float:
    """Top-1 accuracy of a torch model on a labelled dataset (a convenience for tests and benchmarks)."""
    if dataset.y is None:
        raise DistillationError(f"dataset {dataset.name!r} has no labels")
    model.eval()
    correct = 0
    with torch.no_grad():
        for xb, yb in dataset.batches(batch_size):
            correct += int((model(_as_tensor(xb)).argmax(dim=-1).numpy() == yb).sum())
    return correct / len(dataset)
