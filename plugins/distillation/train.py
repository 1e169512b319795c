"""Distillation on the SDK's training loop: ``distill(teacher, student, data, params)``.

The loop, the teacher (cached outputs, tapped features), the losses and the batching are
:mod:`edgecraft.torchkit`'s, shared with pruning's and factorization's recovery. What is
distillation's own is here: the settings (:class:`~.params.TrainingParams`), learned feature
adapters for intermediate feature pairs, the augmentations, and the checks that make a bad plan
fail with a clear message (layer names, label range, augmentation on inputs it cannot apply to).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
from edgecraft import torchkit
from edgecraft.errors import InputError
from edgecraft.feeds import BoundData
from edgecraft.plugins.distillation.losses import FeatureAdapter, RelationMatch
from edgecraft.plugins.distillation.params import TrainingParams
from edgecraft.progress import NullProgress, Progress
from edgecraft.torchkit.data import Batch, TorchData
from edgecraft.torchkit.training import TrainResult
from torch import nn

_NOISE_STD = 0.05


class DistillationError(ValueError):
    """Bad inputs to :func:`distill` (layer names, label range, augmentation on flat data, ...)."""


@dataclass
class DistillResult:
    """The trained student and what happened while training it (the SDK loop's result, plus the teacher's)."""

    student: nn.Module
    training: TrainResult
    teacher_cached: bool
    used_labels: bool
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def history(self) -> list[dict[str, float | None]]:
        return self.training.history

    @property
    def best_epoch(self) -> int:
        return self.training.best_epoch

    @property
    def stopped_early(self) -> bool:
        return self.training.stopped_early

    @property
    def monitor(self) -> str | None:
        return self.training.monitor

    @property
    def best_value(self) -> float | None:
        return self.training.best_value

    def summary(self) -> dict[str, Any]:
        """JSON-friendly facts for a report (the student module aside)."""
        facts = self.training.summary()
        facts.pop("teacher_cached", None)
        return {**facts, "teacher_cached": self.teacher_cached, "used_labels": self.used_labels, **self.extra}


def _shift(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per-sample shift of up to one step along each trailing (spatial) axis, zero-padded."""
    spatial = x.dim() - 2
    padded = nn.functional.pad(x, [1, 1] * spatial)
    offsets = torch.randint(0, 3, (x.shape[0], spatial), generator=generator)
    out = torch.empty_like(x)
    for i in range(x.shape[0]):
        index = [i, slice(None)] + [slice(int(o), int(o) + size) for o, size in zip(offsets[i], x.shape[2:],
                                                                                      strict=True)]
        out[i] = padded[tuple(index)]
    return out


def _augmenter(kind: str, data: TorchData) -> Any:
    """The batch transform for ``augment`` (float inputs only: token ids and masks stay as they are)."""
    if kind == "none":
        return None
    floats = [i for i, spec in enumerate(data.io.inputs) if spec.is_float and spec.batch_axis == 0]
    if kind == "shift":
        bad = [spec for spec in data.io.inputs if spec.is_float and len(spec.sample_shape()) < 2]
        if not floats or bad:
            shapes = {s.name: list(s.sample_shape()) for s in data.io.inputs}
            raise DistillationError(f"augment: shift needs image or sequence inputs (samples of rank >= 2), dataset "
                                    f"{data.name!r} has samples of shape {shapes}")
    if not floats:
        raise DistillationError(f"augment: {kind} changes float inputs, and the model has none batched on axis 0")

    def augment(batch: Batch, generator: torch.Generator) -> Batch:
        inputs = list(batch.inputs)
        for i in floats:
            x = inputs[i]
            inputs[i] = x + _NOISE_STD * torch.randn(x.shape, generator=generator) if kind == "noise" \
                else _shift(x, generator)
        return Batch(inputs, batch.labels, batch.index, augmented=True, source=batch.source)

    return augment


def _check_labels(data: TorchData | None, n_classes: int) -> None:
    labels = None if data is None else data.labels
    if data is None or labels is None:
        return
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        raise DistillationError(f"dataset {data.name!r} has labels in [{int(labels.min())}, {int(labels.max())}] "
                                f"but the teacher predicts {n_classes} classes")


def _as_data(data: TorchData | BoundData | None) -> TorchData | None:
    return TorchData(data) if isinstance(data, BoundData) else data


def distill(teacher: nn.Module, student: nn.Module, data: TorchData | BoundData,
            params: TrainingParams | dict[str, Any] | None = None, *, validation: TorchData | BoundData | None = None,
            progress: Progress | None = None, seed: int = 0, output: int = 0,
            layer_map: list[int] | None = None) -> DistillResult:
    """Train ``student`` (in place) to imitate ``teacher`` on ``data``; return it with its history.

    ``params`` holds the loss and loop settings (:class:`TrainingParams`; ``params.seed`` overrides
    ``seed``). Labels are mixed in by ``alpha``; without labels the soft loss alone is used. The
    best weights on the validation data (``validation``, else a split of ``data``) are kept. The
    loss reads the models' output ``output``. The same seed gives the same student.

    Transformer students: ``params.hidden_weight`` / ``attention_weight`` / ``relation_weight`` add per-layer
    terms pairing student encoder layer ``j`` with teacher layer ``layer_map[j]`` (default: the same index).
    """
    params = params if isinstance(params, TrainingParams) else TrainingParams.model_validate(params or {})
    seed = params.seed if params.seed is not None else seed
    started = time.perf_counter()
    train_data, val = _as_data(data), _as_data(validation)
    assert train_data is not None
    try:
        return _distill(teacher, student, train_data, val, params, progress or NullProgress(), seed, output, started,
                        layer_map)
    except InputError as exc:  # a layer that does not exist, a forward that returns no tensor
        raise DistillationError(exc.message) from exc


def _distill(teacher_module: nn.Module, student: nn.Module, data: TorchData, validation: TorchData | None,
             params: TrainingParams, progress: Progress, seed: int, output: int, started: float,
             layer_map: list[int] | None) -> DistillResult:
    from contextlib import nullcontext

    from edgecraft.torchkit import encoder as enc

    augment = _augmenter(params.augment, data)
    pairs = params.features
    match = None
    relations = None
    if params.hidden_weight > 0 or params.attention_weight > 0 or params.relation_weight > 0:
        t_enc, s_enc = enc.find_encoder(teacher_module), enc.find_encoder(student)
        if t_enc is None or s_enc is None:
            raise DistillationError("hidden_weight / attention_weight / relation_weight need transformer encoders "
                                    "in both the teacher and the student")
        mapping = layer_map if layer_map is not None else list(range(len(s_enc)))
        if len(mapping) != len(s_enc) or max(mapping) >= len(t_enc) or min(mapping) < 0:
            raise DistillationError(f"the student has {len(s_enc)} encoder layers and the teacher {len(t_enc)}: "
                                    f"the pairing {mapping} is not one teacher layer per student layer")
        match = enc.layer_match(t_enc, s_enc, mapping, hidden_weight=params.hidden_weight,
                                attention_weight=params.attention_weight)
        if params.relation_weight > 0:
            heads = params.relation_heads or int(t_enc.config.num_attention_heads)
            relations = RelationMatch(t_enc.prefix, s_enc.root, s_enc.prefix, mapping, weight=params.relation_weight,
                                      heads=heads, mask_input=data.padding_mask())
    layer_names = [p.teacher for p in pairs] + (match.teacher_layers if match else []) + \
        (relations.teacher_layers if relations else [])
    teacher = torchkit.Teacher(teacher_module, output=output, layers=layer_names,
                               cache=params.augment == "none" and params.cache_teacher,
                               elements=match.teacher_elements if match else None)
    eager = enc.EagerAttention(teacher_module, student) if params.attention_weight > 0 else nullcontext()
    eager.__enter__()
    student_tap = torchkit.LayerTap(student, [p.student for p in pairs], role="the student") if pairs else None
    try:
        probe = data.sample_inputs(2)
        probe_logits, probe_feats = teacher.run(probe)
        n_classes = int(probe_logits.shape[-1])
        _check_labels(data, n_classes)
        _check_labels(validation, n_classes)
        adapters = nn.ModuleList()
        if pairs:
            assert student_tap is not None
            student.eval()
            with torch.no_grad():
                student(*probe)
            for pair, t_feat in zip(pairs, probe_feats, strict=True):
                try:
                    adapters.append(FeatureAdapter(tuple(student_tap.outputs[pair.student].shape),
                                                   tuple(t_feat.shape)))
                except ValueError as exc:
                    raise DistillationError(f"feature pair student {pair.student!r} -> teacher {pair.teacher!r}: "
                                            f"{exc}") from exc

        def feature_loss(t_feats: list[torch.Tensor]) -> torch.Tensor:
            terms = []
            if pairs:
                assert student_tap is not None
                terms = [pair.weight * nn.functional.mse_loss(adapter(student_tap.outputs[pair.student]), t_feat)
                         for pair, adapter, t_feat in zip(pairs, adapters, t_feats[:len(pairs)], strict=True)]
            n_match = len(match.teacher_layers) if match is not None else 0
            if match is not None:
                terms.append(match.loss(t_feats[len(pairs):len(pairs) + n_match]))
            if relations is not None:
                terms.append(relations.loss(t_feats[len(pairs) + n_match:]))
            return torch.stack(terms).sum()

        objective = torchkit.TeacherMatch(teacher, kind=params.loss, temperature=params.temperature,
                                          alpha=params.alpha, output=output,
                                          feature_loss=feature_loss if (pairs or match or relations) else None)
        config = torchkit.TrainConfig(
            epochs=params.epochs, batch_size=params.batch_size, lr=params.lr, optimizer=params.optimizer,
            weight_decay=params.weight_decay, momentum=params.momentum, schedule=params.schedule,
            step_size=params.step_size, gamma=params.gamma, validation_fraction=params.validation_fraction,
            patience=params.patience, monitor=params.monitor, seed=seed, keep_zeros=params.keep_zeros,
            warmup=params.warmup, trim_padding=params.trim_padding, freeze=tuple(params.freeze))
        try:
            result = torchkit.train(student, data, objective, config, validation=validation, progress=progress,
                                    label="distill", extra_modules=adapters, augment=augment)
        except ValueError as exc:
            raise DistillationError(str(exc)) from exc
        extra: dict[str, Any] = {}
        val = result.validation
        if val is not None and val.labeled:
            correct = sum(int((teacher.outputs(b)[0].argmax(dim=-1) == b.labels).sum()) for b in val.batches(256))
            extra["teacher_val_accuracy"] = correct / len(val)
        result.seconds = time.perf_counter() - started
        return DistillResult(student=student, training=result, teacher_cached=teacher.cached,
                             used_labels=data.labeled, extra=extra)
    finally:
        teacher.close()
        if student_tap is not None:
            student_tap.close()
        if match is not None:
            match.close()
        if relations is not None:
            relations.close()
        eager.__exit__(None, None, None)
