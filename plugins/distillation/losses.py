"""Distillation losses: soft targets (Hinton et al. 2015), logit MSE, and feature imitation.

torch has the pieces (``kl_div``, ``cross_entropy``, ``mse_loss``) but not their combination with
the T² scaling and the "no labels" rule, so that combination is written here once and tested
against the formula by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def soft_target_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T² · KL(softmax(t/T) ‖ softmax(s/T))`` averaged over the batch.

    The T² factor keeps the soft loss's gradient magnitude comparable to the hard loss as T
    changes (the gradients of softened logits scale as 1/T²).
    """
    log_p_student = F.log_softmax(student_logits / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits / temperature, dim=-1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    return kl * temperature**2


def logit_mse_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Mean squared error between raw logits (Ba & Caruana 2014): no temperature to tune."""
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
    else:
        raise ValueError(f"unknown distillation loss {kind!r} (expected 'kl' or 'mse')")
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


class FeatureAdapter(nn.Module):
    """Maps a student feature to the teacher feature's width (and spatial size), learned during training.

    4-D (N, C, H, W) features use a 1x1 convolution, then adaptive average pooling if the spatial
    sizes differ; 2-D (N, C) and 3-D (N, L, C) features use a linear layer on the last axis.
    """

    def __init__(self, student_shape: tuple[int, ...], teacher_shape: tuple[int, ...]) -> None:
        super().__init__()
        if len(student_shape) != len(teacher_shape):
            raise ValueError(f"student feature has shape {list(student_shape)} but teacher feature has "
                             f"{list(teacher_shape)}: ranks differ, no adapter can match them")
        self.rank = len(student_shape)
        if self.rank == 4:
            self.proj: nn.Module = nn.Conv2d(student_shape[1], teacher_shape[1], kernel_size=1)
            self.spatial = tuple(teacher_shape[2:])
        elif self.rank in (2, 3):
            if self.rank == 3 and student_shape[1] != teacher_shape[1]:
                raise ValueError(f"sequence lengths differ (student {student_shape[1]}, teacher {teacher_shape[1]})")
            self.proj = nn.Linear(student_shape[-1], teacher_shape[-1])
            self.spatial = ()
        else:
            raise ValueError(f"features of rank {self.rank} are not supported (2-D, 3-D or 4-D only)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.proj(x)
        if self.rank == 4 and tuple(y.shape[2:]) != self.spatial:
            y = F.adaptive_avg_pool2d(y, self.spatial)
        return y
