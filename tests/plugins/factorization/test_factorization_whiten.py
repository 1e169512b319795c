"""Activation-aware SVD: at the same rank, it keeps the layer's outputs on real inputs closer than plain SVD."""

from __future__ import annotations

import pytest
import torch
from edgecraft.plugins.factorization.decompose import svd_linear
from edgecraft.plugins.factorization.engine import FactorizationConfig, factorize_model
from edgecraft.plugins.factorization.whiten import activation_aware_linear, input_moments, whitened_basis
from factorization_models import SmallMLP, as_data, skewed_inputs
from torch import nn


def test_full_rank_is_exact_and_output_error_beats_plain_svd_at_every_rank() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(48, 40)
    calibration, held_out = skewed_inputs(512), skewed_inputs(256, seed=1)
    moments = input_moments(nn.Sequential(layer), as_data(calibration), ["0"], samples=512)
    basis = whitened_basis(layer, *moments["0"])
    with torch.no_grad():
        reference = layer(held_out)
        exact = activation_aware_linear(layer, 40, basis)(held_out)
        assert torch.allclose(exact, reference, atol=1e-3)
        for rank in (4, 8, 16, 24):
            plain = (svd_linear(layer, rank)(held_out) - reference).norm()
            aware = (activation_aware_linear(layer, rank, basis)(held_out) - reference).norm()
            assert aware < 0.7 * plain, rank


def test_rank_out_of_range_is_rejected() -> None:
    layer = nn.Linear(8, 6)
    moments = input_moments(nn.Sequential(layer), as_data(skewed_inputs(64, dims=8)), ["0"])
    with pytest.raises(ValueError, match=r"outside 1\.\.6"):
        activation_aware_linear(layer, 7, whitened_basis(layer, *moments["0"]))


def test_factorize_model_activation_aware_keeps_outputs_closer_at_the_same_ranks() -> None:
    torch.manual_seed(0)
    model = SmallMLP(inputs=48).eval()
    calibration, held_out = as_data(skewed_inputs(256)), skewed_inputs(256, seed=2)
    errors = {}
    for method in ("svd", "activation_aware"):
        config = FactorizationConfig(selection="ratio", ratio=0.25, multiple=4, include=("body.0", "body.2"),
                                     linear_method=method)
        result = factorize_model(model, torch.zeros(1, 48), config, calibration=calibration)
        assert [row.method for row in result.factorized] == [method, method]
        with torch.no_grad():
            errors[method] = float((result.module(held_out) - model(held_out)).norm())
        # Same ranks either way: only the directions kept differ.
        assert [row.chosen.ranks for row in result.factorized] == [(12,), (32,)]
    assert errors["activation_aware"] < 0.8 * errors["svd"]


def test_activation_aware_without_calibration_data_is_refused() -> None:
    config = FactorizationConfig(selection="ratio", ratio=0.5, linear_method="activation_aware")
    with pytest.raises(ValueError, match="calibration data"):
        factorize_model(SmallMLP(), torch.zeros(1, 64), config)
