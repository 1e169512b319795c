"""The decompositions themselves: truncated SVD for Linear (and 1×1 Conv2d), spatial SVD and Tucker-2 for Conv2d.

Each function takes an original layer and rank(s) and returns an ``nn.Sequential`` of plain
``nn.Linear`` / ``nn.Conv2d`` layers that computes the same function up to the truncation, so the
factorized model exports to ONNX with ordinary Gemm/Conv nodes and runs on any runtime.

Why hand-written (with ``torch.linalg``) rather than a library:

* Qualcomm's AIMET (``aimet-torch``) is the field's reference for spatial SVD and greedy per-layer
  ratio selection, but it has no Tucker decomposition and it requires torchvision (whose wheel
  must match the torch build exactly; an unpinned one pulls the CUDA torch) plus bokeh, holoviews,
  cvxpy, pandas and tensorboard: a dependency load out of proportion to the arithmetic involved.
* TensorLy implements Tucker/HOSVD for general tensors, but through a process-global backend switch
  (``tl.set_backend``) that would leak into user code, and it does not build layers.
* The arithmetic is a few SVDs of reshaped kernels; writing it here keeps it exact, dependency-free
  and easy to test against the original layer at full rank (which the tests do).
"""

from __future__ import annotations

import torch
from torch import nn


class FactorizedLayer(nn.Sequential):
    """An ``nn.Sequential`` that remembers how it was made (for reports and to avoid re-factorizing).

    It is still a plain Sequential to torch, ``torch.export`` and the ONNX exporter.
    """

    def __init__(self, *layers: nn.Module, method: str, ranks: tuple[int, ...]) -> None:
        super().__init__(*layers)
        self.method = method
        self.ranks = ranks

    def extra_repr(self) -> str:
        return f"method={self.method}, ranks={self.ranks}"


def _weight(layer: nn.Module) -> torch.Tensor:
    return layer.weight.detach().to(torch.float64)


def _bias(layer: nn.Module) -> torch.Tensor | None:
    return None if layer.bias is None else layer.bias.detach().clone()


def _check_rank(rank: int, full: int, what: str) -> None:
    if not 1 <= rank <= full:
        raise ValueError(f"{what}: rank {rank} is outside 1..{full}")


def max_rank(layer: nn.Module, method: str) -> tuple[int, ...]:
    """Largest meaningful rank(s) of ``layer`` for ``method`` (the rank at which it is exact)."""
    if method in ("svd", "activation_aware"):
        if isinstance(layer, nn.Linear):
            return (min(layer.in_features, layer.out_features),)
        return (min(layer.in_channels, layer.out_channels),)
    kh, kw = layer.kernel_size
    if method == "spatial":
        return (min(layer.in_channels * kh, layer.out_channels * kw),)
    if method == "tucker":
        return (layer.in_channels, layer.out_channels)
    raise ValueError(f"unknown method {method!r}")


def singular_values(layer: nn.Module, method: str) -> list[torch.Tensor]:
    """The singular values that govern truncation, one tensor per rank (energy-based selection uses them)."""
    w = _weight(layer)
    if method == "svd":
        return [torch.linalg.svdvals(w.reshape(w.shape[0], -1))]
    if method == "spatial":
        return [torch.linalg.svdvals(_spatial_matrix(w))]
    if method == "tucker":
        cout, cin = w.shape[:2]
        in_unfold = w.transpose(0, 1).reshape(cin, -1)
        out_unfold = w.reshape(cout, -1)
        return [torch.linalg.svdvals(in_unfold), torch.linalg.svdvals(out_unfold)]
    raise ValueError(f"unknown method {method!r}")


# ---------------------------------------------------------------- truncated SVD: Linear and 1×1 conv
def svd_linear(layer: nn.Linear, rank: int) -> FactorizedLayer:
    """``W ≈ (U_r S_r)(V_rᵀ)``: Linear(in→r, no bias) then Linear(r→out, with the original bias).

    The singular values are split evenly (√S on each side) so both factors have similar scale,
    which keeps fine-tuning well conditioned.
    """
    _check_rank(rank, max_rank(layer, "svd")[0], "svd")
    u, s, vh = torch.linalg.svd(_weight(layer), full_matrices=False)
    root = s[:rank].sqrt()
    first = nn.Linear(layer.in_features, rank, bias=False)
    second = nn.Linear(rank, layer.out_features, bias=layer.bias is not None)
    dtype = layer.weight.dtype
    first.weight.data = (root[:, None] * vh[:rank]).to(dtype)
    second.weight.data = (u[:, :rank] * root[None, :]).to(dtype)
    if layer.bias is not None:
        second.bias.data = _bias(layer)
    return FactorizedLayer(first, second, method="svd", ranks=(rank,))


def svd_pointwise(layer: nn.Conv2d, rank: int) -> FactorizedLayer:
    """A 1×1 convolution is a Linear over channels: the same split, as two 1×1 convolutions.

    Stride and padding stay on the first convolution (a 1×1 kernel commutes with both).
    """
    _check_rank(rank, max_rank(layer, "svd")[0], "svd")
    w = _weight(layer).reshape(layer.out_channels, layer.in_channels)
    u, s, vh = torch.linalg.svd(w, full_matrices=False)
    root = s[:rank].sqrt()
    first = nn.Conv2d(layer.in_channels, rank, 1, stride=layer.stride, padding=layer.padding, bias=False,
                      padding_mode=layer.padding_mode)
    second = nn.Conv2d(rank, layer.out_channels, 1, bias=layer.bias is not None)
    dtype = layer.weight.dtype
    first.weight.data = (root[:, None] * vh[:rank]).reshape(rank, layer.in_channels, 1, 1).to(dtype)
    second.weight.data = (u[:, :rank] * root[None, :]).reshape(layer.out_channels, rank, 1, 1).to(dtype)
    if layer.bias is not None:
        second.bias.data = _bias(layer)
    return FactorizedLayer(first, second, method="svd", ranks=(rank,))


# ---------------------------------------------------------------- spatial SVD: k×k -> k×1 then 1×k
def _spatial_matrix(w: torch.Tensor) -> torch.Tensor:
    """Reshape a (Cout, Cin, kh, kw) kernel to the (Cin·kh, Cout·kw) matrix whose rank-r factorization
    is exactly a (kh×1 conv to r channels) followed by a (1×kw conv to Cout channels)."""
    cout, cin, kh, kw = w.shape
    return w.permute(1, 2, 0, 3).reshape(cin * kh, cout * kw)


def spatial_svd(layer: nn.Conv2d, rank: int) -> FactorizedLayer:
    """Conv(kh×kw) ≈ Conv(kh×1, Cin→r) then Conv(1×kw, r→Cout).

    Vertical stride, padding and dilation go to the first convolution, horizontal ones to the
    second; both are separable, so at rank ``min(Cin·kh, Cout·kw)`` the pair is exact.
    """
    if layer.groups != 1:
        raise ValueError("spatial SVD needs groups=1")
    _check_rank(rank, max_rank(layer, "spatial")[0], "spatial")
    cout, cin, kh, kw = layer.weight.shape
    u, s, vh = torch.linalg.svd(_spatial_matrix(_weight(layer)), full_matrices=False)
    root = s[:rank].sqrt()
    vertical = (u[:, :rank] * root[None, :]).reshape(cin, kh, rank).permute(2, 0, 1)  # (r, Cin, kh)
    horizontal = (root[:, None] * vh[:rank]).reshape(rank, cout, kw).permute(1, 0, 2)  # (Cout, r, kw)
    if isinstance(layer.padding, str):
        raise ValueError("spatial SVD needs numeric padding (not 'same'/'valid')")
    (sh, sw), (ph, pw), (dh, dw) = layer.stride, layer.padding, layer.dilation
    first = nn.Conv2d(cin, rank, (kh, 1), stride=(sh, 1), padding=(ph, 0), dilation=(dh, 1), bias=False,
                      padding_mode=layer.padding_mode)
    second = nn.Conv2d(rank, cout, (1, kw), stride=(1, sw), padding=(0, pw), dilation=(1, dw),
                       bias=layer.bias is not None, padding_mode=layer.padding_mode)
    dtype = layer.weight.dtype
    first.weight.data = vertical.reshape(rank, cin, kh, 1).contiguous().to(dtype)
    second.weight.data = horizontal.reshape(cout, rank, 1, kw).contiguous().to(dtype)
    if layer.bias is not None:
        second.bias.data = _bias(layer)
    return FactorizedLayer(first, second, method="spatial", ranks=(rank,))


# ---------------------------------------------------------------- Tucker-2: 1×1, k×k core, 1×1
def _leading_left_vectors(matrix: torch.Tensor, rank: int) -> torch.Tensor:
    """Top-``rank`` left singular vectors of a wide (channels × rest) unfolding, as the eigenvectors of its
    small channels × channels Gram matrix: a partial SVD that avoids factorizing the wide side."""
    _values, vectors = torch.linalg.eigh(matrix @ matrix.T)
    return vectors.flip(-1)[:, :rank]


def tucker2_factors(w: torch.Tensor, rank_in: int, rank_out: int,
                    iterations: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tucker-2 of a (Cout, Cin, kh, kw) kernel over its two channel modes.

    Starts from the truncated HOSVD (leading left singular vectors of each channel-mode unfolding)
    and refines with a few HOOI sweeps (each factor re-fit with the other one fixed), which lowers
    the reconstruction error when both modes are truncated. Returns ``(u_in (Cin, r_in),
    core (r_out, r_in, kh, kw), u_out (Cout, r_out))`` with ``W ≈ core ×_in u_in ×_out u_out``.
    """
    cout, cin = w.shape[:2]

    def unfold_in(t: torch.Tensor) -> torch.Tensor:  # (Cin, rest)
        return t.transpose(0, 1).reshape(t.shape[1], -1)

    u_in = _leading_left_vectors(unfold_in(w), rank_in)
    u_out = _leading_left_vectors(w.reshape(cout, -1), rank_out)
    for _ in range(iterations if (rank_in < cin or rank_out < cout) else 0):
        projected_out = torch.einsum("oihw,or->rihw", w, u_out)
        u_in = _leading_left_vectors(unfold_in(projected_out), rank_in)
        projected_in = torch.einsum("oihw,ic->ochw", w, u_in)
        u_out = _leading_left_vectors(projected_in.reshape(cout, -1), rank_out)
    core = torch.einsum("oihw,or,ic->rchw", w, u_out, u_in)
    return u_in, core, u_out


def tucker2(layer: nn.Conv2d, rank_in: int, rank_out: int) -> FactorizedLayer:
    """Conv(k×k, Cin→Cout) ≈ Conv(1×1, Cin→r_in) → Conv(k×k, r_in→r_out) → Conv(1×1, r_out→Cout).

    Stride, padding and dilation stay on the k×k core; the pointwise convolutions are exact
    channel projections, so at ranks (Cin, Cout) the chain reproduces the layer.
    """
    if layer.groups != 1:
        raise ValueError("Tucker-2 needs groups=1")
    if isinstance(layer.padding, str):
        raise ValueError("Tucker-2 needs numeric padding (not 'same'/'valid')")
    cin, cout = layer.in_channels, layer.out_channels
    _check_rank(rank_in, cin, "tucker (input mode)")
    _check_rank(rank_out, cout, "tucker (output mode)")
    u_in, core, u_out = tucker2_factors(_weight(layer), rank_in, rank_out)
    dtype = layer.weight.dtype
    first = nn.Conv2d(cin, rank_in, 1, bias=False)
    middle = nn.Conv2d(rank_in, rank_out, layer.kernel_size, stride=layer.stride, padding=layer.padding,
                       dilation=layer.dilation, bias=False, padding_mode=layer.padding_mode)
    last = nn.Conv2d(rank_out, cout, 1, bias=layer.bias is not None)
    first.weight.data = u_in.T.reshape(rank_in, cin, 1, 1).contiguous().to(dtype)
    middle.weight.data = core.contiguous().to(dtype)
    last.weight.data = u_out.reshape(cout, rank_out, 1, 1).contiguous().to(dtype)
    if layer.bias is not None:
        last.bias.data = _bias(layer)
    return FactorizedLayer(first, middle, last, method="tucker", ranks=(rank_in, rank_out))


def factorize(layer: nn.Module, method: str, ranks: tuple[int, ...]) -> FactorizedLayer:
    """Dispatch on ``method``: ``svd`` (Linear, 1×1 Conv2d), ``spatial`` or ``tucker`` (Conv2d)."""
    if method == "svd":
        if isinstance(layer, nn.Linear):
            return svd_linear(layer, ranks[0])
        return svd_pointwise(layer, ranks[0])
    if method == "spatial":
        return spatial_svd(layer, ranks[0])
    if method == "tucker":
        return tucker2(layer, ranks[0], ranks[1])
    raise ValueError(f"unknown method {method!r}")
