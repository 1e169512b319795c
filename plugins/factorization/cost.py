"""Cost of layers: parameters and multiply-accumulates (MACs) at the model's real input shape.

MACs depend on the spatial size each convolution sees, so they are counted with forward hooks on
one batch-1 pass rather than from the weights alone. Only Linear and Conv2d layers are counted:
they carry nearly all the arithmetic of the models this strategy changes, and they are the only
layers factorization alters (activations and normalization cost the same before and after).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import torch
from torch import nn


@dataclass(frozen=True)
class LayerCost:
    params: int
    macs: int


def _leaf_macs(module: nn.Module, output: torch.Tensor) -> int:
    per_sample = output[0].numel() if output.dim() > 1 else output.numel()
    if isinstance(module, nn.Linear):
        return per_sample * module.in_features
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return per_sample * (module.in_channels // module.groups) * kh * kw
    return 0


def count_param(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def leaf_macs(model: nn.Module, example: torch.Tensor) -> dict[str, int]:
    """MACs per sample of every Linear/Conv2d submodule (by qualified name) for one forward pass."""
    found: dict[str, int] = {}
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear | nn.Conv2d):
            def hook(mod: nn.Module, _inp: object, out: torch.Tensor, name: str = name) -> None:
                found[name] = found.get(name, 0) + _leaf_macs(mod, out)
            handles.append(module.register_forward_hook(hook))
    try:
        model(example)
    finally:
        for handle in handles:
            handle.remove()
    return found


@torch.no_grad()
def input_shapes(model: nn.Module, example: torch.Tensor, names: list[str]) -> dict[str, tuple[int, ...]]:
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
        model(example)
    finally:
        for handle in handles:
            handle.remove()
    return shapes


def layer_cost(layer: nn.Module, in_shape: tuple[int, ...]) -> LayerCost:
    """Params and per-sample MACs of ``layer`` (original or factorized) fed an input of ``in_shape``."""
    example = torch.zeros(in_shape, dtype=next(layer.parameters()).dtype)
    macs = sum(leaf_macs(layer, example).values())
    return LayerCost(params=count_param(layer), macs=macs)


def model_cost(model: nn.Module, example: torch.Tensor) -> LayerCost:
    """Whole-model params (every parameter) and MACs (Linear/Conv2d only)."""
    return LayerCost(params=count_param(model), macs=sum(leaf_macs(model, example).values()))


def numel(shape: tuple[int, ...]) -> int:
    return prod(shape)
