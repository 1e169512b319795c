"""Parameters and multiply-accumulates (MACs) of a torch model at its real input shapes.

MACs come from torch's own FLOP counter (``torch.utils.flop_counter.FlopCounterMode``, which
counts matmuls and convolutions at the aten level, attention included) halved: one MAC is two
FLOPs. It runs on the ``meta`` device too, so a model can be costed without weights. What torch
does not give is the count per *named layer*, which factorization needs to compare a layer with
its replacement; :func:`count_macs` maps torch's per-module breakdown back to
``named_modules()`` names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass(frozen=True)
class Cost:
    params: int
    macs: int


def count_params(module: nn.Module) -> int:
    """Every parameter (shared ones once)."""
    return sum(p.numel() for p in module.parameters())


def _as_list(inputs: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return [inputs] if isinstance(inputs, torch.Tensor) else list(inputs)


@torch.no_grad()
def count_macs(module: nn.Module, inputs: torch.Tensor | Sequence[torch.Tensor]) -> tuple[int, dict[str, int]]:
    """(total MACs, MACs per named submodule, children included) of one forward on ``inputs``.

    The figures are for the inputs given: pass batch-1 inputs for per-sample costs.
    """
    was_training = module.training
    module.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            module(*_as_list(inputs))
    finally:
        module.train(was_training)
    root = type(module).__name__
    raw = counter.get_flop_counts()
    per_module: dict[str, int] = {}
    for name, _ in module.named_modules():
        key = f"{root}.{name}" if name else root
        if key in raw:
            per_module[name] = sum(int(v) for v in raw[key].values()) // 2
    return int(counter.get_total_flops()) // 2, per_module


def layer_macs(module: nn.Module, inputs: torch.Tensor | Sequence[torch.Tensor],
               kinds: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)) -> dict[str, int]:
    """MACs of every submodule of ``kinds`` (by qualified name) for one forward on ``inputs``."""
    _, per_module = count_macs(module, inputs)
    return {name: per_module.get(name, 0) for name, sub in module.named_modules() if isinstance(sub, kinds)}


def model_cost(module: nn.Module, inputs: torch.Tensor | Sequence[torch.Tensor]) -> Cost:
    """Whole-model parameters and MACs for one forward on ``inputs``."""
    return Cost(params=count_params(module), macs=count_macs(module, inputs)[0])
