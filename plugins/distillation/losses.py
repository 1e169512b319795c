"""Distillation's own loss piece: learned adapters for intermediate feature pairs.

The logit losses (soft targets with T², logit MSE, the "no labels" rule) are the SDK's
(:mod:`edgecraft.torchkit.objectives`), shared with pruning's and factorization's recovery; they are
re-exported here because they are part of this plugin's documented API.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from edgecraft.torchkit.objectives import LossParts, distillation_loss, logit_mse_loss, soft_target_loss
from torch import nn

__all__ = ["FeatureAdapter", "LossParts", "distillation_loss", "logit_mse_loss", "soft_target_loss"]


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
