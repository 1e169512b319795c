"""Sequential whitening: layers refitted in forward order on the inputs the factorized layers before them produce."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from edgecraft.plugins.factorization.engine import FactorizationConfig, factorize_model
from edgecraft.plugins.factorization.sequential import forward_order, paired_moments, sequential_whitening
from edgecraft.plugins.factorization.whiten import activation_aware_linear, input_moments, whitened_basis
from edgecraft.torchkit.data import TorchData
from factorization_models import SmallMLP, as_data, skewed_inputs
from torch import nn


class _Reversed(nn.Module):
    """Two Linears registered in the opposite order to the one the forward calls them in."""

    def __init__(self) -> None:
        super().__init__()
        self.late = nn.Linear(16, 4)
        self.early = nn.Linear(8, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.late(torch.relu(self.early(x)))


def test_the_refit_at_full_rank_maps_distorted_inputs_back_to_the_original_outputs() -> None:
    """x' = x M (an upstream layer's change): the refitted layer on x' gives W x, the plain fit does not."""
    torch.manual_seed(0)
    layer = nn.Linear(24, 20)
    x = torch.randn(600, 24, dtype=torch.float64)
    distortion = torch.eye(24, dtype=torch.float64) + 0.3 * torch.randn(24, 24, dtype=torch.float64)
    x_now = x @ distortion
    moment, cross = x_now.T @ x_now, x.T @ x_now
    with torch.no_grad():
        reference = layer(x.float())
        refit = activation_aware_linear(layer, 20, whitened_basis(layer, moment, 600, cross=cross, damping=1e-9))
        plain = activation_aware_linear(layer, 20, whitened_basis(layer, moment, 600, damping=1e-9))
        assert torch.allclose(refit(x_now.float()), reference, atol=2e-3)
        assert (plain(x_now.float()) - reference).norm() > 10 * (refit(x_now.float()) - reference).norm()


def test_forward_order_follows_the_calls_not_the_registration() -> None:
    model = _Reversed()
    data = as_data(torch.randn(4, 8))
    assert [n for n, _ in model.named_children()] == ["late", "early"]
    assert forward_order(model, ["late", "early"], data) == ["early", "late"]


def test_paired_moments_of_an_unchanged_model_are_its_input_moments() -> None:
    torch.manual_seed(0)
    model = SmallMLP(inputs=48).eval()
    data = as_data(skewed_inputs(64))
    stats = paired_moments(model, model, "body.2", data)
    assert stats is not None
    moment, cross, rows = stats
    expected, count = input_moments(model, data, ["body.2"], samples=64)["body.2"]
    assert rows == count == 64
    assert torch.allclose(moment, expected) and torch.allclose(cross, expected)


def _spread_inputs(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 48, generator=g) * torch.linspace(0.3, 3.0, 48)


def _factorized(model: nn.Module, calibration: TorchData, whitening: str) -> nn.Module:
    config = FactorizationConfig(selection="ratio", ratio=0.25, multiple=4, include=("body.*",),
                                 linear_method="activation_aware", whitening=whitening,
                                 calibration_samples=len(calibration))
    result = factorize_model(model, torch.zeros(1, 48), config, calibration=calibration)
    assert [row.chosen.ranks for row in result.factorized] == [(12,), (32,), (4,)]  # the same ranks every time
    if whitening != "one_shot":
        assert any("3 of 3 factorized Linears refitted" in note for note in result.notes)
    return result.module


def test_the_refit_keeps_the_model_outputs_closer_than_one_shot_at_the_same_ranks() -> None:
    """With calibration rows enough for its least-squares map (here 4096 for 128-wide layers; with a few hundred
    the map overfits them and held-out outputs get worse, which is why the plans calibrate on more sentences)."""
    torch.manual_seed(0)
    model = SmallMLP(inputs=48).eval()
    calibration, held_out = as_data(_spread_inputs(4096, 0)), _spread_inputs(256, 2)
    with torch.no_grad():
        errors = {mode: float((_factorized(model, calibration, mode)(held_out) - model(held_out)).norm())
                  for mode in ("one_shot", "sequential", "sequential_refit")}
    assert errors["sequential_refit"] < 0.985 * errors["one_shot"]
    assert errors["sequential_refit"] < errors["sequential"]


def test_sequential_changes_only_the_layers_whose_inputs_changed() -> None:
    """The first layer's inputs are the model's own: its factors stay the one-shot ones; the layers after it see
    the factorized first layer's outputs and are whitened on those."""
    torch.manual_seed(0)
    model = SmallMLP(inputs=48).eval()
    calibration = as_data(_spread_inputs(1024, 0))
    one_shot, sequential = (_factorized(model, calibration, mode) for mode in ("one_shot", "sequential"))
    first = [(a.weight, b.weight) for a, b in zip(one_shot.body[0], sequential.body[0], strict=True)]
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in first)
    assert not torch.allclose(one_shot.body[2][0].weight, sequential.body[2][0].weight, atol=1e-3)


def test_sequential_whitening_refuses_a_layer_that_is_not_linear() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten())
    data = TorchData.from_arrays(np.zeros((2, 1, 5, 5), np.float32))
    with pytest.raises(ValueError, match="'0' is a Conv2d, not a Linear layer"):
        sequential_whitening(model, model, {"0": 2}, data, refit=True)


@pytest.mark.parametrize(("config", "message"), [
    ({"whitening": "twice"}, "whitening 'twice' is not one of one_shot, sequential, sequential_refit"),
    ({"whitening": "sequential", "linear_method": "svd"}, "needs linear_method 'activation_aware'"),
])
def test_bad_whitening_is_refused(config: dict[str, str], message: str) -> None:
    settings = FactorizationConfig(selection="ratio", ratio=0.5, **config)
    with pytest.raises(ValueError, match=message):
        factorize_model(SmallMLP(inputs=48), torch.zeros(1, 48), settings, calibration=as_data(skewed_inputs(32)))
