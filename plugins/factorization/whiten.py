"""Activation-aware SVD of Linear layers: truncate where the layer's *inputs* say it matters least.

Plain truncated SVD keeps the directions of largest weight energy, i.e. it minimises ``‖W - W'‖``.
What the model needs is the layer's output on real inputs, ``‖(W - W')X‖`` over calibration
activations ``X``. With the inputs' second moment ``C = XᵀX / n = S Sᵀ`` (Cholesky), that error
is ``‖(W - W')S‖``, so the best rank-r ``W'`` is the truncated SVD of ``W S`` with ``S⁻¹`` folded
back into the first factor: ``W' = U_r Σ_r (V_rᵀ S⁻¹)``. This is SVD-LLM's truncation-aware
whitening (Wang et al., 2024; ASVD, Yuan et al., 2023, scales by activation magnitudes for the
same reason). In transformers a few hidden dimensions carry very large activations, so the plain
SVD's choice of directions is far from the one that keeps the outputs: on all-MiniLM-L6-v2, with
the encoder Linears cut to half their parameters by the same greedy rank search, the held-out
embedding cosine before any recovery was 0.83 with this whitening against 0.62 with plain SVD.

Neither torch nor the field's compression libraries ship this for arbitrary ``nn.Linear`` layers
(SVD-LLM and ASVD are research code for LLaMA checkpoints), and the arithmetic is a Cholesky and an
SVD per layer, so it is written here. The second moments are collected with forward hooks on
calibration data; token inputs run one sample at a time, cut to the sample's real length, so
padding positions (which the pooled output ignores) do not weigh in the statistics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from edgecraft.plugins.factorization.decompose import FactorizedLayer
from edgecraft.torchkit.data import TorchData
from torch import nn

#: Ridge added to the second moment, relative to its mean diagonal: keeps the Cholesky defined when
#: calibration has fewer tokens than the layer has inputs, and barely moves the directions otherwise.
DAMPING = 1e-2
#: Ridge of the least-squares refit (``cross``), relative to the mean diagonal: only keeps the solve defined.
REFIT_RIDGE = 1e-6


@dataclass(frozen=True)
class WhitenedBasis:
    """The SVD of ``W S`` for one Linear: ``u`` (out, k), ``s`` (k,), ``vh`` = ``V_kᵀ S⁻¹`` (k, in)."""

    u: torch.Tensor
    s: torch.Tensor
    vh: torch.Tensor

    @property
    def full_rank(self) -> int:
        return int(self.s.numel())


@torch.no_grad()
def input_moments(model: nn.Module, data: TorchData, names: Iterable[str], *,
                  samples: int = 128) -> dict[str, tuple[torch.Tensor, int]]:
    """``{layer name: (Σ xxᵀ in float64, number of input rows)}`` of the named Linears on ``samples`` samples."""
    wanted = list(names)
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def hook(name: str) -> Callable[[nn.Module, tuple[torch.Tensor, ...], torch.Tensor], None]:
        def record(_module: nn.Module, args: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
            x = args[0].detach().reshape(-1, args[0].shape[-1]).to(torch.float64)
            sums[name] = sums.get(name, 0) + x.T @ x
            counts[name] = counts.get(name, 0) + int(x.shape[0])
        return record

    handles = [model.get_submodule(n).register_forward_hook(hook(n)) for n in wanted]
    was_training = model.training
    model.eval()
    subset = data.take(min(samples, len(data)))
    # Token inputs: one sample per forward, cut to its own length, so no padding position is counted.
    batch_size = 1 if subset.padding_mask() is not None else 32
    try:
        for batch in subset.batches(batch_size, trim=True):
            model(*batch.inputs)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return {n: (sums[n], counts[n]) for n in wanted if n in sums}


def whitened_basis(layer: nn.Linear, moment: torch.Tensor, count: int, *, damping: float = DAMPING,
                   cross: torch.Tensor | None = None) -> WhitenedBasis:
    """SVD of ``W S`` with ``S Sᵀ`` the (damped) input second moment; see the module docstring.

    ``cross`` (``Σ x x'ᵀ`` over the same rows, ``x`` the inputs the layer had in the original model and
    ``x'`` = the rows of ``moment``, its inputs in the model being factorized) makes the target the
    original layer's outputs on the original inputs: the rank-r ``W'`` minimising ``‖W X - W' X'‖`` is the
    whitened truncation of the least-squares map ``W_ls = W C_xx' C_x'x'⁻¹`` (the residual of ``W_ls`` is
    orthogonal to ``X'``, so only ``‖(W_ls - W') S‖`` depends on ``W'``; exact up to the whitening's ridge):
    the layer also corrects, as far as a linear map of its own inputs can, what the layers before it changed.
    """
    w = layer.weight.detach().to(torch.float64)
    c = moment / max(count, 1)
    c = c + damping * float(torch.diagonal(c).mean().clamp_min(1e-12)) * torch.eye(c.shape[0], dtype=torch.float64)
    s_factor, info = torch.linalg.cholesky_ex(c)
    if int(info) != 0:  # not positive definite even with the ridge: fall back to a stronger one
        c = c + torch.diagonal(c).mean() * torch.eye(c.shape[0], dtype=torch.float64)
        s_factor = torch.linalg.cholesky(c)
    if cross is not None:
        # The least-squares map, with a ridge far below DAMPING: the whitening ridge only weighs directions for
        # the truncation, but in this solve it would shrink W in every low-variance direction (W_ls ≠ W even
        # when the inputs did not change).
        raw = moment / max(count, 1)
        raw = raw + REFIT_RIDGE * float(torch.diagonal(raw).mean().clamp_min(1e-12)) * torch.eye(
            raw.shape[0], dtype=torch.float64)
        w = torch.linalg.solve(raw, (w @ (cross.to(torch.float64) / max(count, 1))).T).T  # W C_xx' C_x'x'⁻¹
    target = w @ s_factor
    u, s, v_h = torch.linalg.svd(target, full_matrices=False)
    # V_kᵀ S⁻¹ = (S⁻ᵀ V_k)ᵀ: one triangular solve instead of an inverse.
    vh = torch.linalg.solve_triangular(s_factor.T, v_h.T, upper=True).T
    return WhitenedBasis(u=u, s=s, vh=vh)


def activation_aware_linear(layer: nn.Linear, rank: int, basis: WhitenedBasis) -> FactorizedLayer:
    """Linear(in→r, no bias) then Linear(r→out, original bias) from the whitened SVD, ``√Σ`` on each side."""
    if not 1 <= rank <= basis.full_rank:
        raise ValueError(f"activation_aware: rank {rank} is outside 1..{basis.full_rank}")
    root = basis.s[:rank].sqrt()
    first = nn.Linear(layer.in_features, rank, bias=False)
    second = nn.Linear(rank, layer.out_features, bias=layer.bias is not None)
    dtype = layer.weight.dtype
    first.weight.data = (root[:, None] * basis.vh[:rank]).to(dtype)
    second.weight.data = (basis.u[:, :rank] * root[None, :]).to(dtype)
    if layer.bias is not None:
        second.bias.data = layer.bias.detach().clone()
    return FactorizedLayer(first, second, method="activation_aware", ranks=(rank,))


def energy_rank(basis: WhitenedBasis, energy: float) -> int:
    """Smallest rank keeping ``energy`` of the whitened squared singular values (the output energy)."""
    squared = (basis.s.to(torch.float64) ** 2).numpy()
    kept = np.cumsum(squared) / max(float(squared.sum()), 1e-30)
    return int(np.searchsorted(kept, energy - 1e-12)) + 1
