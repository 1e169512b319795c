"""Cost of layers: parameters and multiply-accumulates (MACs) at the model's real input shapes.

MACs depend on the spatial size each convolution sees, so a layer is costed at the input shape it
sees in the model (:func:`input_shapes`, one forward with pre-hooks). The counting itself is the
SDK's (:mod:`edgecraft.torchkit.counting`, torch's FLOP counter), shared with pruning's report.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from edgecraft.torchkit.counting import Cost, count_params
from edgecraft.torchkit.counting import model_cost as _model_cost
from torch import nn

#: A layer's (or model's) parameters and MACs.
LayerCost = Cost

__all__ = ["LayerCost", "count_params", "input_shapes", "layer_cost", "model_cost"]


def _as_list(example: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return [example] if isinstance(example, torch.Tensor) else list(example)


@torch.no_grad()
def input_shapes(model: nn.Module, example: torch.Tensor | Sequence[torch.Tensor],
                 names: list[str]) -> dict[str, tuple[int, ...]]:
    """The input shape each named submodule sees in one forward pass (first call wins)."""
    wanted = set(names)
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []
    for name, module in model.named_modules():
        if name in wanted:
            def hook(_mod: nn.Module, inputs: tuple[torch.Tensor, ...], name: str = name) -> None:
                shapes.setdefault(name, tuple(inputs[0].shape))
            handles.append(module.register_forward_pre_hook(hook))
    try:
        model(*_as_list(example))
    finally:
        for handle in handles:
            handle.remove()
    return shapes


def layer_cost(layer: nn.Module, in_shape: tuple[int, ...]) -> LayerCost:
    """Params and MACs of ``layer`` (original or factorized) fed an input of ``in_shape`` (batch 1)."""
    example = torch.zeros(in_shape, dtype=next(layer.parameters()).dtype)
    return _model_cost(layer, [example])


def model_cost(model: nn.Module, example: torch.Tensor | Sequence[torch.Tensor]) -> LayerCost:
    """Whole-model params (every parameter) and MACs for one forward on ``example`` (batch 1)."""
    return _model_cost(model, _as_list(example))
