"""Rank selection: energy, rounding, per-shape defaults, the greedy target search, leaving layers alone."""

from __future__ import annotations

import pytest
import torch
from edgecraft.plugins.factorization.cost import LayerCost, model_cost
from edgecraft.plugins.factorization.decompose import FactorizedLayer
from edgecraft.plugins.factorization.engine import FactorizationConfig, factorize_model
from edgecraft.plugins.factorization.selection import (
    Candidate,
    LayerChoice,
    TargetUnreachable,
    default_method,
    greedy_select,
    ranks_for_energy,
    round_rank,
)
from edgecraft.torchkit import TorchData
from factorization_models import SmallCNN, SmallMLP
from torch import nn


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


class EvalData:
    """Tensors for the tests, and the same samples bound as the SDK's TorchData (what factorize_model reads)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        self.x = x
        self.data = TorchData.from_arrays(x.numpy(), None if y is None else y.numpy())


def _cnn_data(n: int = 96) -> EvalData:
    return EvalData(torch.randn(n, 1, 16, 16), torch.randint(0, 10, (n,)))


def test_energy_rank_counts_squared_singular_values() -> None:
    layer = nn.Linear(10, 10, bias=False)
    layer.weight.data = torch.diag(torch.tensor([4.0, 3.0, 2.0, 1.0] + [0.0] * 6))
    # squared: 16, 9, 4, 1 of 30 -> cumulative 0.533, 0.833, 0.967, 1.0
    assert ranks_for_energy(layer, "svd", 0.5, 1) == (1,)
    assert ranks_for_energy(layer, "svd", 0.8, 1) == (2,)
    assert ranks_for_energy(layer, "svd", 0.9, 1) == (3,)
    assert ranks_for_energy(layer, "svd", 1.0, 1) == (4,)
    assert ranks_for_energy(layer, "svd", 0.9, 8) == (8,)


@pytest.mark.parametrize(("value", "full", "multiple", "expected"),
                         [(5, 64, 8, 8), (9, 64, 8, 16), (0.2, 64, 8, 8), (60, 64, 8, 64), (3, 2, 4, 2), (7, 64, 1, 7)])
def test_round_rank(value: float, full: int, multiple: int, expected: int) -> None:
    assert round_rank(value, full, multiple) == expected


def test_default_method_follows_the_layer_shape() -> None:
    assert default_method(nn.Linear(4, 4), "auto") == "svd"
    assert default_method(nn.Conv2d(32, 32, 1), "auto") == "svd"
    assert default_method(nn.Conv2d(3, 32, 3), "auto") == "spatial"
    assert default_method(nn.Conv2d(32, 64, 3), "auto") == "tucker"
    assert default_method(nn.Conv2d(32, 64, 3), "spatial") == "spatial"
    assert default_method(nn.Conv2d(32, 32, 3, groups=32), "auto") is None


def _choice(name: str, params: int, options: list[tuple[int, float]]) -> LayerChoice:
    cost = LayerCost(params, params)
    return LayerChoice(name=name, kind="Linear", method="svd", in_shape=(1, 1), original=cost,
                       candidates=[Candidate(ranks=(p,), cost=LayerCost(p, p), delta_loss=d) for p, d in options])


def test_greedy_takes_the_cheapest_loss_per_saving_first() -> None:
    sensitive = _choice("sensitive", 100, [(50, 1.0), (25, 3.0)])
    robust = _choice("robust", 100, [(50, 0.01), (25, 0.02)])
    reached = greedy_select([sensitive, robust], total=200, target=0.7, metric="params")
    assert reached <= 0.7
    assert sensitive.chosen is None and robust.chosen is not None and robust.chosen.ranks == (25,)
    reached = greedy_select([sensitive, robust], total=200, target=0.4, metric="params")
    assert reached <= 0.4 and sensitive.chosen is not None


def test_greedy_gives_back_what_an_overshoot_did_not_need() -> None:
    big = _choice("big", 100, [(10, 0.09)])
    small = _choice("small", 100, [(90, 0.001)])
    reached = greedy_select([big, small], total=200, target=0.925, metric="params")
    # small is taken first (best ratio) but big alone meets the target: small goes back to the original
    assert big.chosen is not None and small.chosen is None
    assert reached == pytest.approx(110 / 200)


def test_greedy_reports_an_unreachable_target() -> None:
    layer = _choice("only", 100, [(60, 0.0)])
    with pytest.raises(TargetUnreachable) as info:
        greedy_select([layer], total=150, target=0.5, metric="params")
    assert info.value.reachable == pytest.approx(110 / 150)


@pytest.mark.parametrize("cost", ["params", "macs"])
@pytest.mark.parametrize("target", [0.3, 0.6])
def test_target_selection_meets_the_requested_fraction(cost: str, target: float) -> None:
    model = SmallCNN().eval()
    data = _cnn_data()
    result = factorize_model(model, data.x[:1], FactorizationConfig(selection="target", target=target, cost=cost),
                             data.data)
    before, after = result.before, result.after
    ratio = (after.params / before.params) if cost == "params" else (after.macs / before.macs)
    assert ratio <= target
    assert result.reached == pytest.approx(ratio)
    assert result.factorized and all(layer.chosen.delta_loss is not None for layer in result.factorized)
    # a real measurement of the model (not the bookkeeping) agrees
    assert model_cost(result.module, data.x[:1]) == after
    with torch.no_grad():
        assert result.module(data.x).shape == (len(data.x), 10)


def test_target_selection_prefers_insensitive_layers() -> None:
    """Make body.2 exactly rank 4 so truncating it costs nothing: the greedy search must take it, not body.0."""
    model = SmallMLP(inputs=64).eval()
    with torch.no_grad():
        model.body[2].weight.copy_(torch.randn(128, 4) @ torch.randn(4, 128) / 8)
    data = EvalData(torch.randn(128, 64))  # no labels: the loss is the distance to the original outputs
    result = factorize_model(model, data.x[:1], FactorizationConfig(selection="target", target=0.6), data.data)
    by_name = {layer.name: layer for layer in result.layers}
    assert by_name["body.2"].chosen is not None and by_name["body.2"].chosen.delta_loss == pytest.approx(0, abs=1e-5)
    assert by_name["body.0"].chosen is None
    assert by_name["body.0"].candidates and by_name["body.0"].candidates[0].delta_loss > 1e-4
    assert result.reached is not None and result.reached <= 0.6
    assert result.loss_after == pytest.approx(result.loss_before, abs=1e-5)


def test_ratio_and_rank_modes_and_rounding() -> None:
    model = SmallCNN().eval()
    example = torch.randn(1, 1, 16, 16)
    ratio = factorize_model(model, example, FactorizationConfig(selection="ratio", ratio=0.25, multiple=8))
    ranks = {layer.name: layer.chosen.ranks for layer in ratio.factorized}
    assert ranks["features.4"] == (16, 16)  # Tucker-2: a quarter of 48 channels, rounded up to 16
    assert all(r % 8 == 0 for rs in ranks.values() for r in rs)
    fixed = factorize_model(model, example, FactorizationConfig(selection="rank", rank=8, multiple=8))
    assert {layer.chosen.ranks for layer in fixed.factorized} <= {(8,), (8, 8)}


def test_layers_are_left_alone_when_factorizing_would_not_lower_cost() -> None:
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 256), nn.ReLU(), nn.Linear(256, 256))
    result = factorize_model(model, torch.randn(1, 8), FactorizationConfig(selection="ratio", ratio=0.25))
    by_name = {layer.name: layer for layer in result.layers}
    assert by_name["0"].chosen is None and "would not lower its params" in by_name["0"].reason
    assert by_name["2"].chosen is None  # rank >= 8 costs 8*8 + 8*256 > 8*256
    assert by_name["4"].chosen is not None
    assert isinstance(result.module[4], FactorizedLayer) and isinstance(result.module[0], nn.Linear)


def test_include_exclude_and_the_original_is_untouched() -> None:
    model = SmallCNN().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = factorize_model(model, torch.randn(1, 1, 16, 16),
                             FactorizationConfig(selection="ratio", ratio=0.25, include=("features.*",),
                                                 exclude=("features.6",)))
    names = {layer.name for layer in result.layers}
    assert "features.6" not in names and not any(n.startswith("head") for n in names)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert not any(isinstance(m, FactorizedLayer) for m in model.modules())
    # factorizing again does not descend into factorized layers
    again = factorize_model(result.module, torch.randn(1, 1, 16, 16), FactorizationConfig(selection="ratio",
                                                                                          ratio=0.5))
    assert not any(layer.name.startswith(tuple(n + "." for n in names)) for layer in again.layers)


@pytest.mark.parametrize("runtime", ["torch", "ort"])
def test_latency_aware_selection_records_and_respects_timings(runtime: str) -> None:
    model = SmallMLP(inputs=64).eval()
    data = EvalData(torch.randn(64, 64), torch.randint(0, 10, (64,)))
    result = factorize_model(model, data.x[:1], FactorizationConfig(selection="ratio", ratio=0.25,
                                                                    latency=runtime), data.data)
    for layer in result.layers:
        assert layer.original_latency is not None and layer.original_latency > 0
        if layer.chosen is not None:
            assert layer.chosen.latency is not None and layer.chosen.latency < layer.original_latency
        elif layer.reason.startswith("every candidate was slower"):
            assert not layer.candidates
