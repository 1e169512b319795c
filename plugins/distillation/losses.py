"""Distillation's own loss pieces: learned adapters for intermediate feature pairs, and MiniLMv2's
self-attention relations.

The logit losses (soft targets with T², logit MSE, the "no labels" rule) are the SDK's
(:mod:`edgecraft.torchkit.objectives`), shared with pruning's and factorization's recovery; they are
re-exported here because they are part of this plugin's documented API.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from edgecraft.torchkit.objectives import LossParts, distillation_loss, logit_mse_loss, soft_target_loss
from torch import nn

__all__ = ["FeatureAdapter", "LossParts", "RelationMatch", "distillation_loss", "logit_mse_loss", "relation_kl",
           "soft_target_loss"]


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


#: The three projections whose self-relations MiniLMv2 transfers (submodules of a BERT-family layer).
RELATION_PARTS = ("attention.self.query", "attention.self.key", "attention.self.value")


def relation_kl(teacher: torch.Tensor, student: torch.Tensor, heads: int,
                mask: torch.Tensor | None = None) -> torch.Tensor:
    """KL(teacher relation ‖ student relation) of one projection, MiniLMv2 (Wang et al. 2021, eq. 4-6).

    ``teacher`` / ``student``: a projection's output ``[batch, seq, width]`` (the widths may differ: the
    relation ``softmax(x_h · x_hᵀ / √d_h)`` of each of ``heads`` relation heads is ``seq × seq`` whatever
    the head size). ``mask`` ``[batch, seq]`` (1 = token, 0 = padding): padded keys get no probability and
    padded query rows are left out of the mean, so a batch's padding does not dilute the loss.
    """
    def log_relation(x: torch.Tensor) -> torch.Tensor:
        b, n, width = x.shape
        if width % heads:
            raise ValueError(f"a projection of width {width} cannot be split into {heads} relation heads (set "
                             "relation_heads to a number that divides the teacher's and the student's widths)")
        h = x.reshape(b, n, heads, width // heads).transpose(1, 2)  # [b, heads, seq, d]
        scores = h @ h.transpose(-1, -2) / (width // heads) ** 0.5
        if mask is not None:
            scores = scores.masked_fill(~mask[:, None, None, :].bool(), float("-inf"))
        return torch.log_softmax(scores.float(), dim=-1)

    log_t, log_s = log_relation(teacher), log_relation(student)
    p_t = log_t.exp()
    # 0·log 0 = 0 at masked keys (both log-probabilities are -inf there).
    kl = torch.where(p_t > 0, p_t * (log_t - log_s), torch.zeros_like(p_t)).sum(dim=-1)  # [b, heads, seq]
    if mask is None:
        return kl.mean()
    rows = mask[:, None, :].to(kl.dtype).expand_as(kl)
    return (kl * rows).sum() / rows.sum().clamp_min(1.0)


class RelationMatch:
    """MiniLMv2's self-attention relation transfer between paired encoder layers (a ``feature_loss`` term).

    Student layer ``j`` learns teacher layer ``mapping[j]``'s query-query, key-key and value-value
    relations (:func:`relation_kl`, summed over the three and over the layers, times ``weight``). Unlike
    attention maps (MiniLMv1, ``attention_weight``) the relations need no eager attention and transfer the
    values too; they compare ``seq × seq`` matrices, so a student with fewer heads or a narrower projection
    still pairs with its teacher. ``teacher_layers`` are the names the :class:`~edgecraft.torchkit.Teacher`
    taps; the student is tapped here, and its ``attention_mask`` input (position ``mask_input``, None: no
    padding mask) is read by a forward pre-hook so padded positions are left out.
    """

    def __init__(self, teacher_prefix: str, student_root: torch.nn.Module, student_prefix: str,
                 mapping: Sequence[int], *, weight: float, heads: int, mask_input: int | None) -> None:
        from edgecraft.torchkit.taps import LayerTap

        self.weight, self.heads = weight, heads
        self.teacher_layers = [f"{teacher_prefix}.{i}.{part}" for i in mapping for part in RELATION_PARTS]
        student_layers = [f"{student_prefix}.{j}.{part}" for j in range(len(mapping)) for part in RELATION_PARTS]
        self.tap = LayerTap(student_root, student_layers, role="the student")
        self.mask: torch.Tensor | None = None
        self._hook: Any = None
        if mask_input is not None:
            def keep_mask(_module: torch.nn.Module, args: tuple[Any, ...]) -> None:
                self.mask = args[mask_input] if len(args) > mask_input else None
            self._hook = student_root.register_forward_pre_hook(keep_mask)

    def loss(self, teacher_features: Sequence[torch.Tensor]) -> torch.Tensor:
        terms = [relation_kl(t, s, self.heads, self.mask)
                 for t, s in zip(teacher_features, self.tap.values(), strict=True)]
        return self.weight * torch.stack(terms).sum()

    def close(self) -> None:
        self.tap.close()
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
