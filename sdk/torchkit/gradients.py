"""Gradients of a loss without a weight update: what data-aware importance criteria read.

Torch-Pruning's ``TaylorImportance`` scores channels by ``|w · dL/dw|`` from the ``.grad`` left on
the weights; it leaves collecting those gradients to the caller, which is this function.
"""

from __future__ import annotations

import torch
from edgecraft.torchkit.data import TorchData, outputs_of
from edgecraft.torchkit.objectives import Objective
from edgecraft.torchkit.onednn_guard import strided_pointwise_guard
from torch import nn


def accumulate_gradients(module: nn.Module, data: TorchData, objective: Objective, *, batches: int,
                         batch_size: int, seed: int) -> int:
    """Leave ``.grad`` summed over ``batches`` shuffled batches; weights unchanged. Returns the samples used.

    The module runs in eval mode: BatchNorm running statistics must not move while scoring.
    """
    module.eval()
    module.zero_grad(set_to_none=True)
    generator = torch.Generator().manual_seed(seed)
    used = 0
    with strided_pointwise_guard(module):
        for i, batch in enumerate(data.batches(batch_size, shuffle=True, generator=generator)):
            if i >= batches:
                break
            objective(outputs_of(module(*batch.inputs)), batch, train=True).total.backward()
            used += len(batch)
    return used
