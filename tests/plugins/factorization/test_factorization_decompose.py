"""At full rank every decomposition reproduces its layer; truncation follows the singular values."""

from __future__ import annotations

import pytest
import torch
from edgecraft.plugins.factorization.decompose import (
    FactorizedLayer,
    factorize,
    max_rank,
    singular_values,
    spatial_svd,
    svd_linear,
    tucker2,
)
from torch import nn

TOL = dict(rtol=1e-4, atol=1e-5)

CONVS = [
    dict(in_channels=6, out_channels=10, kernel_size=3, padding=1),
    dict(in_channels=6, out_channels=10, kernel_size=3, stride=(2, 1), padding=(1, 2), dilation=(1, 2)),
    dict(in_channels=3, out_channels=8, kernel_size=(3, 5), padding=(1, 2), padding_mode="reflect"),
    dict(in_channels=4, out_channels=5, kernel_size=5, stride=2, padding=0, bias=False),
]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("bias", [True, False])
def test_linear_full_rank_is_exact(bias: bool) -> None:
    layer = nn.Linear(20, 12, bias=bias)
    x = torch.randn(7, 3, 20)  # extra leading axis: Linear acts on the last one
    factorized = svd_linear(layer, 12)
    assert [type(m) for m in factorized] == [nn.Linear, nn.Linear]
    torch.testing.assert_close(factorized(x), layer(x), **TOL)


def test_pointwise_conv_full_rank_is_exact() -> None:
    layer = nn.Conv2d(8, 16, 1, stride=2)
    x = torch.randn(2, 8, 9, 9)
    factorized = factorize(layer, "svd", max_rank(layer, "svd"))
    torch.testing.assert_close(factorized(x), layer(x), **TOL)


@pytest.mark.parametrize("kwargs", CONVS)
def test_spatial_svd_full_rank_is_exact(kwargs: dict) -> None:
    layer = nn.Conv2d(**kwargs)
    x = torch.randn(2, layer.in_channels, 13, 11)
    factorized = spatial_svd(layer, max_rank(layer, "spatial")[0])
    kh, kw = layer.kernel_size
    assert factorized[0].kernel_size == (kh, 1) and factorized[1].kernel_size == (1, kw)
    torch.testing.assert_close(factorized(x), layer(x), **TOL)


@pytest.mark.parametrize("kwargs", CONVS)
def test_tucker2_full_rank_is_exact(kwargs: dict) -> None:
    layer = nn.Conv2d(**kwargs)
    x = torch.randn(2, layer.in_channels, 13, 11)
    factorized = tucker2(layer, layer.in_channels, layer.out_channels)
    assert [m.kernel_size for m in factorized] == [(1, 1), layer.kernel_size, (1, 1)]
    torch.testing.assert_close(factorized(x), layer(x), **TOL)


def test_truncated_svd_error_is_the_tail_of_the_singular_values() -> None:
    """Eckart–Young: the weight error of a rank-r SVD is the norm of the dropped singular values."""
    layer = nn.Linear(32, 24)
    s = singular_values(layer, "svd")[0]
    for rank in (4, 12, 20):
        f = svd_linear(layer, rank)
        w = (f[1].weight @ f[0].weight).double()
        err = torch.linalg.matrix_norm(w - layer.weight.double())
        assert err.item() == pytest.approx(float(s[rank:].pow(2).sum().sqrt()), rel=1e-4)


@pytest.mark.parametrize("method", ["spatial", "tucker"])
def test_conv_error_shrinks_as_rank_grows(method: str) -> None:
    layer = nn.Conv2d(24, 24, 3, padding=1)
    x = torch.randn(4, 24, 8, 8)
    errors = []
    with torch.no_grad():
        reference = layer(x)
        for fraction in (0.25, 0.5, 0.75, 1.0):
            ranks = tuple(max(1, round(fraction * r)) for r in max_rank(layer, method))
            errors.append(float((factorize(layer, method, ranks)(x) - reference).norm() / reference.norm()))
    assert errors == sorted(errors, reverse=True)
    assert errors[-1] < 1e-5 < errors[0]


def test_factorized_layer_keeps_its_recipe_and_fewer_params() -> None:
    layer = nn.Conv2d(64, 64, 3, padding=1)
    f = tucker2(layer, 16, 16)
    assert isinstance(f, FactorizedLayer) and f.method == "tucker" and f.ranks == (16, 16)
    assert sum(p.numel() for p in f.parameters()) < sum(p.numel() for p in layer.parameters()) / 3


@pytest.mark.parametrize(("method", "ranks"), [("svd", (0,)), ("svd", (13,)), ("spatial", (0,)), ("tucker", (7, 1))])
def test_rank_out_of_range_is_rejected(method: str, ranks: tuple[int, ...]) -> None:
    layer = nn.Linear(12, 30) if method == "svd" else nn.Conv2d(6, 6, 3)
    with pytest.raises(ValueError, match="outside"):
        factorize(layer, method, ranks)


def test_grouped_conv_is_rejected() -> None:
    with pytest.raises(ValueError, match="groups"):
        tucker2(nn.Conv2d(8, 8, 3, groups=8), 4, 4)
