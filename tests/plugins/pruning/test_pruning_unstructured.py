"""Unstructured and N:M pruning: the requested sparsity is reached exactly and survives fine-tuning."""

from __future__ import annotations

import pytest
import torch
from edgecraft.errors import InputError
from edgecraft.plugins.pruning import engine
from edgecraft.plugins.pruning.params import PruningParams
from edgecraft.plugins.pruning.unstructured import cubic_schedule, nm_mask, parse_pattern
from edgecraft.torchkit import TorchData
from pruning_models import digits_images, mlp, residual

WHERE = "steps[1] (sparsify)"


def _weights(model: torch.nn.Module, ignored: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    return {n: m.weight for n, m in model.named_modules()
            if isinstance(m, torch.nn.Conv2d | torch.nn.Linear) and n not in ignored}


def _zeros(model: torch.nn.Module, ignored: tuple[str, ...] = ()) -> tuple[int, int]:
    ws = _weights(model, ignored)
    return sum(int((w == 0).sum()) for w in ws.values()), sum(w.numel() for w in ws.values())


def test_global_sparsity_is_exact() -> None:
    model = residual()
    facts = engine.prune_unstructured(model, PruningParams(mode="unstructured", ratio=0.8, scope="global"),
                                      where=WHERE)
    zeros, total = _zeros(model)
    assert zeros == round(0.8 * total) == facts["zeros"] == facts["zeros_measured"]
    assert not any(hasattr(m, "weight_mask") for m in model.modules())  # plain module again


def test_uniform_and_per_layer_sparsity_are_exact_per_layer() -> None:
    model = mlp()
    engine.prune_unstructured(model, PruningParams(mode="unstructured", ratio=0.7, layer_ratios={"4": 0.25},
                                                   ignored_layers=["0"]), where=WHERE)
    w = _weights(model)
    assert int((w["0"] == 0).sum()) == 0
    assert int((w["2"] == 0).sum()) == round(0.7 * w["2"].numel())
    assert int((w["4"] == 0).sum()) == round(0.25 * w["4"].numel())


def test_n_m_pattern_keeps_n_of_every_m_along_inputs() -> None:
    model = residual()
    facts = engine.prune_unstructured(model, PruningParams(mode="unstructured", pattern="2:4",
                                                           ignored_layers=["stem.0"]), where=WHERE)
    for name, weight in _weights(model, ("stem.0",)).items():
        blocks = (weight.movedim(1, -1) if weight.dim() > 2 else weight).reshape(-1, 4)
        assert ((blocks != 0).sum(1) <= 2).all(), name
    assert facts["sparsity_reached"] == 0.5


def test_nm_mask_picks_the_largest() -> None:
    w = torch.tensor([[0.1, -3.0, 2.0, 0.5, 1.0, 0.0, -0.2, 4.0]])
    assert nm_mask(w, parse_pattern("2:4")).tolist() == [[0, 1, 1, 0, 1, 0, 0, 1]]


@pytest.mark.parametrize("bad", ["4:4", "0:4", "2-4", "3:2", "a:b"])
def test_bad_patterns(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_pattern(bad)


def test_n_m_on_indivisible_layer_names_it() -> None:
    with pytest.raises(InputError, match=r"steps\[1\] \(sparsify\).*layer 'stem.0'.*multiple of 4"):
        engine.prune_unstructured(residual(), PruningParams(mode="unstructured", pattern="2:4"), where=WHERE)


def test_sparsity_that_zeroes_a_whole_layer_is_an_error() -> None:
    tiny = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.ReLU(), torch.nn.Linear(1, 2))
    with pytest.raises(InputError, match="every weight of layer '0'"):
        engine.prune_unstructured(tiny, PruningParams(mode="unstructured", ratio=0.8), where=WHERE)
    assert not any(hasattr(m, "weight_mask") for m in tiny.modules())  # nothing half-pruned


def test_cubic_schedule_ends_at_the_target() -> None:
    steps = cubic_schedule(0.8, 4)
    assert steps == sorted(steps) and steps[-1] == pytest.approx(0.8) and steps[0] > 0.8 / 4


@pytest.mark.slow
def test_gradual_pruning_with_finetuning_is_exact_and_masks_survive_training() -> None:
    x, y = digits_images(48)
    data = TorchData.from_arrays(x, y)
    model = residual()
    tuning = engine.make_finetuning(data, None, epochs=1, lr=1e-2, batch_size=16, where=WHERE)
    facts = engine.prune_unstructured(model, PruningParams(mode="unstructured", ratio=0.75, schedule="gradual",
                                                           iterations=3, dataset="train", epochs=1),
                                      where=WHERE, finetuning=tuning)
    zeros, total = _zeros(model)
    assert zeros == round(0.75 * total)
    assert [r["sparsity_target"] for r in facts["rounds"]][-1] == pytest.approx(0.75)
    assert all(r["finetune_loss"] is not None for r in facts["rounds"])
