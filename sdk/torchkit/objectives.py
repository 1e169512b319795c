"""What a training step minimises, given the model's outputs on a batch.

An objective is called as ``objective(outputs, batch, train=...)`` with the model's outputs as a
tuple (several-output models included) and returns a :class:`Loss`: the total (with its graph)
and named parts for logging. It reads output ``self.output`` (the position of
``plan.evaluation.output`` in the model's outputs, default 0).

* :class:`CrossEntropy` — labels.
* :class:`TeacherMatch` — imitate a :class:`Teacher`'s outputs: MSE on raw outputs, or KL between
  temperature-softened distributions (Hinton et al. 2015), mixed with labels by ``alpha`` when
  the data has them, plus an optional feature-loss hook (intermediate feature pairs).

torch has ``kl_div``, ``cross_entropy`` and ``mse_loss``, but not their combination with the T²
scaling and the "no labels" rule, so that combination is written here once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from edgecraft.errors import InputError
from edgecraft.torchkit.data import Batch, outputs_of
from edgecraft.torchkit.taps import LayerTap
from torch import nn

#: Teacher outputs (and features) are cached only while they fit in this many bytes.
CACHE_BUDGET_BYTES = 1 << 30


@dataclass
class Loss:
    """The total loss (keeps its graph) and its named parts as floats (for the history)."""

    total: torch.Tensor
    parts: dict[str, float] = field(default_factory=dict)


class Objective(Protocol):
    #: Names of the parts this objective may report (history columns ``<part>_loss``).
    parts: tuple[str, ...]
    #: Which model output the loss (and validation accuracy) reads.
    output: int

    def __call__(self, outputs: tuple[torch.Tensor, ...], batch: Batch, *, train: bool = True) -> Loss: ...

    def summary(self) -> dict[str, Any]: ...


class CrossEntropy:
    """Cross-entropy of output ``output`` against the batch's labels."""

    parts: tuple[str, ...] = ()

    def __init__(self, output: int = 0) -> None:
        self.output = output

    def __call__(self, outputs: tuple[torch.Tensor, ...], batch: Batch, *, train: bool = True) -> Loss:
        if batch.labels is None:
            raise InputError("cross-entropy needs labels, and this data has none")
        return Loss(F.cross_entropy(outputs[self.output], batch.labels))

    def summary(self) -> dict[str, Any]:
        return {}


# ---------------------------------------------------------------- the loss formulas
def soft_target_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T² · KL(softmax(t/T) ‖ softmax(s/T))`` averaged over the batch.

    The T² factor keeps the soft loss's gradient magnitude comparable to the hard loss as T
    changes (the gradients of softened logits scale as 1/T²).
    """
    log_p_student = F.log_softmax(student_logits / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits / temperature, dim=-1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    return kl * temperature**2


def cosine_loss(student_out: torch.Tensor, teacher_out: torch.Tensor) -> torch.Tensor:
    """``1 - cos`` between each sample's flattened outputs, averaged: for embedding models, whose outputs
    are directions (sentence embeddings), not logits to soften; it is also the metric they are gated on."""
    return (1.0 - F.cosine_similarity(student_out.flatten(1), teacher_out.flatten(1), dim=1)).mean()


def logit_mse_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Mean squared error between raw outputs (Ba & Caruana 2014): no temperature to tune."""
    return F.mse_loss(student_logits, teacher_logits)


@dataclass
class LossParts:
    """The total loss and its parts (floats for logging, the total keeps its graph)."""

    total: torch.Tensor
    soft: float
    hard: float | None
    feature: float | None


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor | None, *,
                      kind: str = "kl", temperature: float = 4.0, alpha: float = 0.7,
                      feature_loss: torch.Tensor | None = None) -> LossParts:
    """``alpha · soft + (1 - alpha) · CE(student, labels) + feature_loss``.

    Without labels the soft term alone is used (weight 1), whatever ``alpha`` says: there is nothing
    else to learn from, and scaling the only term by ``alpha`` would just rescale the learning rate.
    """
    if kind == "kl":
        soft = soft_target_loss(student_logits, teacher_logits, temperature)
    elif kind == "mse":
        soft = logit_mse_loss(student_logits, teacher_logits)
    elif kind == "cosine":
        soft = cosine_loss(student_logits, teacher_logits)
    else:
        raise ValueError(f"unknown distillation loss {kind!r} (expected 'kl', 'mse' or 'cosine')")
    if labels is None:
        total, hard_value = soft, None
    else:
        hard = F.cross_entropy(student_logits, labels)
        total = alpha * soft + (1.0 - alpha) * hard
        hard_value = float(hard.detach())
    feature_value = None
    if feature_loss is not None:
        total = total + feature_loss
        feature_value = float(feature_loss.detach())
    return LossParts(total=total, soft=float(soft.detach()), hard=hard_value, feature=feature_value)


# ---------------------------------------------------------------- the teacher
class Teacher:
    """Runs a teacher (eval mode, no grad) on a batch's inputs; optionally taps named layers.

    With ``cache`` its outputs are kept per sample of the bound data the first time a sample is
    seen (while they fit in ``budget`` bytes), so later epochs and the validation split reuse them;
    augmented and trimmed batches (whose shapes vary) always run the teacher.
    """

    def __init__(self, module: nn.Module, *, output: int = 0, layers: list[str] | None = None, cache: bool = True,
                 budget: int = CACHE_BUDGET_BYTES, elements: dict[str, int] | None = None) -> None:
        self.module = module
        self.output = output
        self.layers = list(layers or [])
        self.cache_enabled = cache
        self.budget = budget
        self._was_training = module.training
        self.tap = LayerTap(module, self.layers, role="the teacher", elements=elements) if self.layers else None
        self._cache: dict[int, dict[str, Any]] = {}
        self.used_cache = False

    @torch.no_grad()
    def run(self, inputs: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(output ``output``, tapped features) of the teacher on ``inputs``."""
        self.module.eval()
        out = outputs_of(self.module(*inputs))
        if self.output >= len(out):
            raise InputError(f"the teacher returns {len(out)} output(s); output {self.output} was asked for")
        feats = self.tap.values() if self.tap else []
        return out[self.output].detach(), [f.detach() for f in feats]

    def outputs(self, batch: Batch) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The teacher's outputs for ``batch`` (from the cache when its samples were seen before)."""
        source = batch.source
        if not self.cache_enabled or batch.augmented or batch.trimmed or source is None:
            return self.run(batch.inputs)
        key = id(source)
        entry = self._cache.get(key)
        if entry is None:
            logits, feats = self.run(batch.inputs)
            n = len(source)
            per_sample = (logits.numel() + sum(f.numel() for f in feats)) * logits.element_size() // max(len(batch), 1)
            if per_sample * n > self.budget:
                self._cache[key] = {"off": True, "ref": source}
                return logits, feats
            entry = {"off": False, "ref": source, "have": np.zeros(n, dtype=bool),
                     "out": torch.empty((n, *logits.shape[1:]), dtype=logits.dtype),
                     "feats": [torch.empty((n, *f.shape[1:]), dtype=f.dtype) for f in feats]}
            self._cache[key] = entry
            self._store(entry, batch.index, logits, feats)
            return logits, feats
        if entry["off"]:
            return self.run(batch.inputs)
        index = torch.from_numpy(batch.index)
        if not entry["have"][batch.index].all():
            logits, feats = self.run(batch.inputs)
            self._store(entry, batch.index, logits, feats)
            return logits, feats
        self.used_cache = True
        return entry["out"][index], [f[index] for f in entry["feats"]]

    @property
    def cached(self) -> bool:
        """Caching is on and no data was too large for it."""
        return self.cache_enabled and not any(entry["off"] for entry in self._cache.values())

    @staticmethod
    def _store(entry: dict[str, Any], index: np.ndarray, logits: torch.Tensor, feats: list[torch.Tensor]) -> None:
        rows = torch.from_numpy(index)
        entry["out"][rows] = logits
        for store, f in zip(entry["feats"], feats, strict=True):
            store[rows] = f
        entry["have"][index] = True

    def close(self) -> None:
        if self.tap:
            self.tap.close()
        self.module.train(self._was_training)


class TeacherMatch:
    """Imitate a teacher: ``kind`` 'mse' (raw outputs), 'kl' (softened by ``temperature``) or 'cosine'
    (``1 - cos``, for embedding outputs).

    ``alpha`` mixes in cross-entropy on labels when a batch has them (``alpha`` · soft + (1 -
    ``alpha``) · CE); ``alpha=None`` ignores labels (pure imitation, e.g. recovering a pruned model
    against the unpruned one). ``feature_loss(teacher_features)`` is the hook for intermediate
    feature terms: it receives the teacher's tapped features for the batch and returns a loss
    (the caller taps the student itself); it is added during training only.
    """

    def __init__(self, teacher: Teacher, *, kind: Literal["mse", "kl", "cosine"] = "mse", temperature: float = 4.0,
                 alpha: float | None = None, output: int = 0,
                 feature_loss: Callable[[list[torch.Tensor]], torch.Tensor] | None = None) -> None:
        self.teacher = teacher
        self.kind = kind
        self.temperature = temperature
        self.alpha = alpha
        self.output = output
        self.feature_loss = feature_loss
        self.parts = ("soft", "hard", "feature")

    def __call__(self, outputs: tuple[torch.Tensor, ...], batch: Batch, *, train: bool = True) -> Loss:
        target, feats = self.teacher.outputs(batch)
        labels = batch.labels if self.alpha is not None else None
        features = self.feature_loss(feats) if (train and self.feature_loss is not None) else None
        parts = distillation_loss(outputs[self.output], target, labels, kind=self.kind,
                                  temperature=self.temperature, alpha=self.alpha if self.alpha is not None else 1.0,
                                  feature_loss=features)
        named = {"soft": parts.soft}
        if parts.hard is not None:
            named["hard"] = parts.hard
        if parts.feature is not None:
            named["feature"] = parts.feature
        return Loss(parts.total, named)

    def summary(self) -> dict[str, Any]:
        return {"teacher_cached": self.teacher.cached}
