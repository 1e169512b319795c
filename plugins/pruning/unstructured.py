"""Unstructured and N:M magnitude pruning with ``torch.nn.utils.prune``.

Masks are applied with torch's own pruning re-parametrisation (``weight = weight_orig * weight_mask``)
so fine-tuning cannot revive a pruned weight, then made permanent with ``prune.remove`` so the result
is a plain module that exports to ONNX. Counts are integers (``amount=k``), so the requested sparsity
is reached exactly: ``round(ratio * n)`` zeros over the pruned weights.

torch has no N:M method; :func:`nm_mask` writes the mask (keep the N largest |w| of every M consecutive
weights along the input-channel axis, the layout sparse tensor cores expect) and hands it to
``prune.custom_from_mask``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgecraft.errors import InputError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Pattern:
    keep: int
    block: int

    @property
    def sparsity(self) -> float:
        return (self.block - self.keep) / self.block

    def __str__(self) -> str:
        return f"{self.keep}:{self.block}"


def parse_pattern(text: str) -> Pattern:
    """'N:M' -> Pattern(N, M); ``ValueError`` with the reason otherwise."""
    parts = text.split(":")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"{text!r} is not 'N:M' (e.g. '2:4')")
    keep, block = (int(p) for p in parts)
    if block < 2 or not 0 < keep < block:
        raise ValueError(f"{text!r}: need 0 < N < M and M >= 2 (N weights kept of every M)")
    return Pattern(keep, block)


def weight_layers(model: torch.nn.Module, ignored: set[str]) -> list[tuple[str, torch.nn.Module]]:
    import torch

    kinds = (torch.nn.modules.conv._ConvNd, torch.nn.Linear)
    return [(n, m) for n, m in model.named_modules() if isinstance(m, kinds) and n not in ignored]


def _input_axis_last(weight: torch.Tensor) -> torch.Tensor:
    """(out, in, *k) -> (out, *k, in): N:M groups run along input channels."""
    return weight.movedim(1, -1) if weight.dim() > 2 else weight


def nm_mask(weight: torch.Tensor, pattern: Pattern) -> torch.Tensor:
    import torch

    w = _input_axis_last(weight.detach()).abs()
    shape = w.shape
    blocks = w.reshape(-1, pattern.block)
    top = torch.topk(blocks, pattern.keep, dim=1).indices
    mask = torch.zeros_like(blocks)
    mask.scatter_(1, top, 1.0)
    mask = mask.reshape(shape)
    return mask.movedim(-1, 1) if weight.dim() > 2 else mask


def check_nm_layer(name: str, module: torch.nn.Module, pattern: Pattern, *, where: str) -> None:
    in_dim = int(module.weight.shape[1])
    if in_dim % pattern.block:
        raise InputError(f"step {where}: params.pattern {pattern} needs layer {name!r}'s input channels "
                         f"({in_dim} per group) to be a multiple of {pattern.block}",
                         hint=f"add {name!r} to params.ignored_layers")


def apply_nm(layers: list[tuple[str, torch.nn.Module]], pattern: Pattern, *, where: str) -> None:
    from torch.nn.utils import prune

    for name, module in layers:
        check_nm_layer(name, module, pattern, where=where)
        prune.custom_from_mask(module, "weight", nm_mask(module.weight, pattern))


def prune_to(layers: list[tuple[str, torch.nn.Module]], sparsity: float, *, scope: str,
             overrides: dict[str, float], where: str) -> None:
    """Raise every layer's masked fraction to its target (already masked weights stay masked).

    ``overrides`` maps layer name -> its own target sparsity (the layers it names leave the global pool).
    Repeated calls only add masks, which is what the gradual schedule needs.
    """
    from torch.nn.utils import prune

    pool = []
    fixed = []
    for name, module in layers:  # check every layer before masking any
        target = overrides.get(name, sparsity if scope == "uniform" else None)
        if target is None:
            pool.append((name, module))
            continue
        total = module.weight.numel()
        k = round(target * total)
        if k >= total:
            raise InputError(f"step {where}: sparsity {target:g} would zero every weight of layer {name!r} "
                             f"({total} weights)", hint=f"lower its ratio or add {name!r} to params.ignored_layers")
        fixed.append((module, k))
    for module, k in fixed:
        already = masked_count(module)
        if k > already:
            prune.l1_unstructured(module, "weight", amount=k - already)
    if pool:
        total = sum(m.weight.numel() for _, m in pool)
        already = sum(masked_count(m) for _, m in pool)
        k = round(sparsity * total)
        if k > already:
            prune.global_unstructured([(m, "weight") for _, m in pool], pruning_method=prune.L1Unstructured,
                                      amount=k - already)
        for name, module in pool:
            if masked_count(module) >= module.weight.numel():
                raise InputError(f"step {where}: global sparsity {sparsity:g} zeroes every weight of layer "
                                 f"{name!r}", hint=f"use scope: uniform, a lower ratio, or add {name!r} to "
                                 "params.ignored_layers")


def masked_count(module: torch.nn.Module) -> int:
    mask = getattr(module, "weight_mask", None)
    return 0 if mask is None else int((mask == 0).sum())


def make_permanent(layers: list[tuple[str, torch.nn.Module]]) -> None:
    from torch.nn.utils import prune

    for _, module in layers:
        if prune.is_pruned(module):
            prune.remove(module, "weight")


def cubic_schedule(final: float, iterations: int) -> list[float]:
    """Zhu & Gupta (2017): sparsity rises fast first, then slowly, s_t = s_f (1 - (1 - t/T)^3)."""
    return [final * (1 - (1 - t / iterations) ** 3) for t in range(1, iterations + 1)]
