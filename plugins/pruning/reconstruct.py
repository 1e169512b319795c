"""Least-squares reconstruction after a heads/FFN cut (``reconstruct: least_squares``).

Cutting heads and FFN neurons leaves every layer's output projection (``attention.output.dense`` on the
kept heads' context vectors, FFN ``output.dense`` on the kept intermediate activations) with the weights
that were fitted to *all* of its inputs: the removed heads' and neurons' contribution is simply missing.
The kept inputs are correlated with the removed ones, so a re-fit of that projection recovers much of
what was lost: with the inputs ``X`` (kept activations, a ones column for the bias) and the unpruned
layer's output ``Y`` on the same calibration tokens, the new weights solve the ridge-damped normal
equations ``(XᵀX + λI) W = XᵀY + λW₀`` (the ridge pulls towards the current weights ``W₀``, so a
direction the calibration tokens never excite keeps its trained value). This is the "mask tuning" step
of Kwon et al., "A Fast Post-Training Pruning Framework for Transformers" (NeurIPS 2022), with the whole
projection re-fitted instead of one scale per kept head/neuron (a superset: the least-squares solution
can only lower the calibration error further), and the layer-wise reconstruction of most post-training
pruning methods (OBC/SparseGPT's objective, for structured cuts).

Done as Kwon does it: layer by layer, in order, each solve's inputs taken from the *already
reconstructed* pruned model while the targets come from the unpruned one, so the later layers also
correct the earlier layers' remaining error instead of compounding it. The target of a projection is
its sub-layer's pre-LayerNorm sum (``dense(x) + residual``): the unpruned sum minus the pruned model's
residual, which makes the fit linear (the LayerNorm after it is not).

``reconstruct: mask`` is Kwon's own variant: one scale per kept head or neuron, solved from the same sums.

Measured on all-MiniLM-L6-v2 (12 -> 9 heads, FFN 1536 -> 960; benchmarks/compress_levers.py): the whole-projection
fit lifts the held-out cosine of the cut model from 0.767 to 0.848 (the mask fit to 0.772 only), but after 200
recovery steps it ends *below* recovery from the plain cut (0.908 vs 0.923): the re-fit suits the calibration
sentences (0.781 -> 0.942 on them) more than other text, and recovery does not undo it. Hence the step's default
is ``reconstruct: none``; the re-fit is for cuts used without (or with little) recovery.

Neither torch nor Torch-Pruning has this (Torch-Pruning prunes and leaves the weights; torch has the
solver, ``torch.linalg.solve``, used here): the hooks and the normal equations are written here.
Padding positions are excluded (the pooled embedding ignores them): each batch is cut to its longest
sentence and only rows whose attention mask is set enter the sums, as factorization's calibration
does (plugins/factorization/whiten.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from edgecraft.torchkit.taps import inputs_reaching
from torch import nn

if TYPE_CHECKING:
    from edgecraft.torchkit.data import TorchData
    from edgecraft.torchkit.encoder import Encoder

#: Ridge of the normal equations, relative to their mean diagonal (see the module docstring).
DAMPING = 1e-2
#: Calibration batches (sentences per forward pass).
BATCH = 32
#: The projections re-fitted, in forward order within a layer: (its parent module, the Linear in it).
SITES = (("attention.output", "attention.output.dense"), ("output", "output.dense"))


@dataclass(frozen=True)
class SiteError:
    """One re-fitted projection: its name and the relative error of its sub-layer's pre-LayerNorm output
    (``‖dense(x) + residual - target‖² / ‖target‖²`` over the calibration tokens) before and after."""

    name: str
    before: float
    after: float


def _mask_rows(mask: torch.Tensor | None, tensor: torch.Tensor) -> torch.Tensor:
    flat = tensor.reshape(-1, tensor.shape[-1])
    return flat if mask is None else flat[mask.reshape(-1)]


def _calibration(data: TorchData, samples: int) -> list[tuple[list[torch.Tensor], torch.Tensor | None]]:
    """(inputs, real-token mask) per batch, trimmed to the batch's longest sentence, in a fixed order."""
    subset = data.take(min(samples, len(data)))
    index = subset.padding_mask()
    return [(batch.inputs, None if index is None else batch.inputs[index] != 0)
            for batch in subset.batches(BATCH, trim=True)]


def _targets(teacher: Encoder, batches: list[tuple[list[torch.Tensor], torch.Tensor | None]]
             ) -> dict[tuple[int, int], torch.Tensor]:
    """The unpruned model's pre-LayerNorm sums at every site, real tokens only, batches concatenated."""
    out: dict[tuple[int, int], list[torch.Tensor]] = {}

    def hook(key: tuple[int, int], dense: nn.Module) -> Callable[..., None]:
        def record(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            out.setdefault(key, []).append(_mask_rows(current[0], dense(args[0]) + args[1]))
        return record

    current: list[torch.Tensor | None] = [None]
    handles = [teacher.sub(i, parent).register_forward_pre_hook(hook((i, s), teacher.sub(i, linear)))
               for i in range(len(teacher)) for s, (parent, linear) in enumerate(SITES)]
    try:
        for inputs, mask in batches:
            current[0] = mask
            teacher.root(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return {k: torch.cat(v) for k, v in out.items()}


def _refit(student: Encoder, layer: int, site: int, target: torch.Tensor,
           batches: list[tuple[list[torch.Tensor], torch.Tensor | None]], damping: float, method: str,
           group_size: int) -> SiteError:
    """Accumulate the normal equations of one projection over the calibration batches and solve them."""
    parent, linear_name = SITES[site]
    linear = student.sub(layer, linear_name)
    assert isinstance(linear, nn.Linear)
    n_in = linear.in_features + 1
    gram = torch.zeros(n_in, n_in, dtype=torch.float64)
    cross = torch.zeros(n_in, linear.out_features, dtype=torch.float64)
    energy = 0.0
    offset = 0
    for inputs, mask in batches:
        # The forward ends right at the hooked sub-layer: (its input, the residual) is all the fit needs.
        args = inputs_reaching(student.root, student.sub(layer, parent), inputs)
        if args is None:
            continue  # never reached: the token count check below says so
        x = _mask_rows(mask, args[0]).to(torch.float64)
        x = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], dim=1)
        rows = len(x)
        y = target[offset:offset + rows].to(torch.float64) - _mask_rows(mask, args[1]).to(torch.float64)
        offset += rows
        gram.add_(x.T @ x)
        cross.add_(x.T @ y)
        energy += float((y * y).sum())
    if offset != len(target):  # the same sentences in the same order: anything else is a bug here
        raise RuntimeError(f"reconstruction of {student.layer_name(layer)}.{linear_name}: {offset} calibration "
                           f"tokens for {len(target)} targets")
    bias = linear.bias.detach() if linear.bias is not None else torch.zeros(linear.out_features)
    w0 = torch.cat([linear.weight.detach().T, bias[None, :]]).to(torch.float64)
    target_energy = max(float((target.to(torch.float64) ** 2).sum()), 1e-30)

    # ‖XW - Y‖² = tr(WᵀGW) - 2 tr(WᵀC) + ‖Y‖²: the error before and after from the sums alone.
    def error(w: torch.Tensor) -> float:
        residual = float((w * (gram @ w)).sum() - 2 * (w * cross).sum()) + energy
        return max(residual, 0.0) / target_energy

    if method == "least_squares":
        ridge = damping * float(torch.diagonal(gram).mean().clamp_min(1e-12))
        solved = torch.linalg.solve(gram + ridge * torch.eye(n_in, dtype=torch.float64), cross + ridge * w0)
    else:
        solved = _mask_solve(gram, cross, w0, group_size if site == 0 else 1, damping)
    before, after = error(w0), error(solved)
    if after < before:  # the ridge makes this all but certain; never make a layer worse on its own calibration
        linear.weight.data = solved[:-1].T.contiguous().to(linear.weight.dtype)
        if linear.bias is not None:
            linear.bias.data = solved[-1].contiguous().to(linear.bias.dtype)
    return SiteError(f"{student.layer_name(layer)}.{linear_name}", before, min(before, after))


def _mask_solve(gram: torch.Tensor, cross: torch.Tensor, w0: torch.Tensor, group: int,
                damping: float) -> torch.Tensor:
    """Kwon et al.'s mask tuning: one scale per kept head (``group`` input columns) or neuron, bias kept.

    With ``W = W₀ diag(m)`` the output is linear in ``m``: its normal equations come from the same sums as the
    full fit, ``M = XᵀX ⊙ W₀ᵀW₀`` summed over each group's columns and ``rᵢ = Σₒ (XᵀY)ᵢₒ W₀ₒᵢ`` minus the kept
    bias's share. A few hundred unknowns per layer instead of a whole matrix: far less room to fit the
    calibration sentences' particulars. The ridge pulls the scales towards 1 (the cut model)."""
    n = gram.shape[0] - 1
    weight, bias = w0[:n], w0[n]  # (in, out), (out,)
    m_full = gram[:n, :n] * (weight @ weight.T)
    r_full = (cross[:n] * weight).sum(dim=1) - gram[:n, n] * (weight @ bias)
    groups = torch.arange(n) // group
    count = int(groups[-1]) + 1
    pick = torch.zeros(count, n, dtype=torch.float64)
    pick[groups, torch.arange(n)] = 1.0
    g_mat = pick @ m_full @ pick.T
    ridge = damping * float(torch.diagonal(g_mat).mean().clamp_min(1e-12))
    scales = torch.linalg.solve(g_mat + ridge * torch.eye(count, dtype=torch.float64),
                                pick @ r_full + ridge * torch.ones(count, dtype=torch.float64))
    return torch.cat([weight * scales[groups][:, None], bias[None, :]])


@torch.no_grad()
def reconstruct(student: Encoder, teacher: Encoder, data: TorchData, *, samples: int,
                damping: float = DAMPING, method: str = "least_squares") -> dict[str, Any]:
    """Re-fit every layer's two output projections of ``student`` (pruned) to ``teacher``'s (unpruned) sub-layer
    outputs on ``samples`` sentences of ``data``, layer by layer in order. Both must have the same layer count."""
    if len(student) != len(teacher):
        raise ValueError(f"reconstruction needs the unpruned model's layers: {len(student)} pruned layers, "
                         f"{len(teacher)} unpruned")
    if method not in ("least_squares", "mask"):
        raise ValueError(f"reconstruction method {method!r}: use 'least_squares' or 'mask'")
    was = student.root.training, teacher.root.training
    student.root.eval()
    teacher.root.eval()
    try:
        batches = _calibration(data, samples)
        targets = _targets(teacher, batches)
        sites = [_refit(student, i, s, targets[(i, s)], batches, damping, method, student.head_size)
                 for i in range(len(student)) for s in range(len(SITES))]
    finally:
        student.root.train(was[0])
        teacher.root.train(was[1])
    tokens = len(next(iter(targets.values())))
    return {"method": method, "samples": min(samples, len(data)), "tokens": tokens, "damping": damping,
            "relative_error": {e.name.removeprefix(f"{student.prefix}."): [round(e.before, 5), round(e.after, 5)]
                               for e in sites},
            "note": "per projection: [before, after] relative error of its sub-layer's pre-LayerNorm output on the "
                    "calibration tokens, inputs from the pruned model as reconstructed so far"}
