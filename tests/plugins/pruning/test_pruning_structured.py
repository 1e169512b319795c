"""Structured pruning: coupled shapes stay consistent, ONNX export matches, errors name the layer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from edgecraft.errors import InputError
from edgecraft.plugins.pruning import engine, rebuild
from edgecraft.plugins.pruning.params import PruningParams
from edgecraft.torchkit import TorchData
from pruning_models import coupled, digits_images, residual
from torch import nn

WHERE = "steps[0] (prune)"
EXAMPLE = torch.randn(4, 1, 32, 32, generator=torch.Generator().manual_seed(1))


def _prune(model: nn.Module, **kw: object) -> dict:
    return engine.prune_structured(model, EXAMPLE, PruningParams(**kw), where=WHERE)


def _convs(model: nn.Module) -> dict[str, nn.Conv2d]:
    return {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def test_residual_and_concat_shapes_stay_consistent() -> None:
    model = coupled()
    facts = _prune(model, ratio=0.5)
    c = _convs(model)
    # residual add: stem, block's last conv and the depthwise conv share their channels
    assert c["stem.0"].out_channels == c["block.3"].out_channels == c["dw"].out_channels == 8
    assert model.stem[1].num_features == model.block[4].num_features == 8
    # depthwise stays depthwise; the grouped conv keeps 4 groups with equal slices
    assert c["dw"].groups == c["dw"].in_channels == 8
    assert c["grouped"].groups == 4 and c["grouped"].in_channels == 8 and c["grouped"].out_channels == 16
    # concat: the merge conv reads exactly what the two branches now produce
    assert c["merge"].in_channels == c["grouped"].out_channels + c["branch"].out_channels
    # Linear after flatten: its input follows merge's channels times the 4x4 pooled map
    assert model.head.in_features == c["merge"].out_channels * 16
    assert model.head.out_features == 10 and "head" in facts["kept_whole_for_output"]
    assert model(EXAMPLE).shape == (4, 10)
    assert facts["channel_ratio_removed"] == pytest.approx(0.5)


def test_onnx_export_of_pruned_model_runs_on_ort_and_matches(tmp_path) -> None:
    import onnxruntime as ort

    model = coupled()
    _prune(model, ratio=0.5, round_to=4)
    path = tmp_path / "pruned.onnx"
    torch.onnx.export(model, (EXAMPLE[:1],), str(path), input_names=["input"], output_names=["output"],
                      dynamo=False, dynamic_axes={"input": {0: "b"}, "output": {0: "b"}})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"input": EXAMPLE.numpy()})
    with torch.no_grad():
        want = model(EXAMPLE).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert path.stat().st_size < 0.6 * _export_size(coupled(), tmp_path)


def _export_size(model: nn.Module, tmp_path) -> int:
    path = tmp_path / "dense.onnx"
    torch.onnx.export(model, (EXAMPLE[:1],), str(path), dynamo=False)
    return path.stat().st_size


def test_round_to_is_respected_even_with_grouped_convs() -> None:
    # Torch-Pruning's BasePruner silently skips the group holding the grouped conv here; we must not.
    model = coupled()
    facts = _prune(model, ratio=0.5, round_to=4)
    for name in ("stem.0", "dw", "grouped", "branch", "merge"):
        assert _convs(model)[name].out_channels % 4 == 0
    assert "dw" in facts["layers"] and "grouped" in facts["layers"]


def test_global_scope_never_empties_a_layer_and_reaches_the_ratio() -> None:
    model = coupled()
    facts = _prune(model, ratio=0.6, scope="global", max_layer_ratio=0.8)
    for name, conv in _convs(model).items():
        assert conv.out_channels >= 2, name
    assert facts["channel_ratio_removed"] == pytest.approx(0.6, abs=0.05)
    assert model(EXAMPLE).shape == (4, 10)


@pytest.mark.parametrize("importance", ["l1", "l2", "bn_scale"])
def test_importance_criteria(importance: str) -> None:
    model = residual()
    _prune(model, ratio=0.5, importance=importance)
    assert model.stem[0].out_channels == 8 and model(EXAMPLE).shape == (4, 10)


@pytest.mark.slow
def test_taylor_importance_and_iterative_finetuning_use_the_data() -> None:
    x, y = digits_images(48)
    data = TorchData.from_arrays(x, y)
    model = residual()
    tuning = engine.make_finetuning(data, None, epochs=1, lr=1e-3, batch_size=32, where=WHERE)
    facts = engine.prune_structured(model, EXAMPLE, PruningParams(ratio=0.5, importance="taylor", dataset="train",
                                                                  epochs=1, schedule="gradual", iterations=2),
                                    where=WHERE, finetuning=tuning)
    assert [r["ratio"] for r in facts["rounds"]] == [0.25, 0.5]
    assert all(r["finetune_loss"] is not None for r in facts["rounds"])
    assert model.stem[0].out_channels == 8
    assert all(p.grad is None for p in model.parameters())


def test_taylor_scores_differ_from_magnitude() -> None:
    x, y = digits_images(64)
    data = TorchData.from_arrays(x, y)
    kept = {}
    for importance in ("l1", "taylor"):
        model = residual()
        tuning = engine.make_finetuning(data, None, epochs=0, lr=1e-3, batch_size=32, where=WHERE)
        engine.prune_structured(model, EXAMPLE, PruningParams(ratio=0.5, importance=importance), where=WHERE,
                                finetuning=tuning)
        kept[importance] = model.b2.conv1.weight.detach().clone()
    assert kept["l1"].shape == kept["taylor"].shape
    assert not torch.equal(kept["l1"], kept["taylor"])


def test_per_layer_ratio_and_ignored_layers() -> None:
    model = coupled()
    facts = _prune(model, ratio=0.5, layer_ratios={"merge": 0.25}, ignored_layers=["branch"])
    c = _convs(model)
    assert c["merge"].out_channels == 24
    assert c["branch"].out_channels == 16 and "branch" not in facts["layers"]


def test_ratio_that_empties_a_layer_is_an_error_naming_it_before_anything_changes() -> None:
    model = coupled()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(InputError, match=r"steps\[0\] \(prune\).*every output channel of layer 'grouped'"):
        _prune(model, ratio=0.9)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_per_layer_ratio_that_empties_the_layer_names_it() -> None:
    with pytest.raises(InputError, match=r"layer_ratios\['branch'\] = 0.95 would remove every output channel "
                                         r"of layer 'branch'"):
        _prune(coupled(), ratio=0.5, layer_ratios={"branch": 0.95})


def test_round_to_that_empties_a_layer_is_an_error() -> None:
    with pytest.raises(InputError, match="round_to=16"):
        _prune(coupled(), ratio=0.5, round_to=16)


def test_unknown_and_output_layers_are_errors() -> None:
    with pytest.raises(InputError, match="'nope' matches no layer"):
        _prune(coupled(), ratio=0.5, ignored_layers=["nope"])
    with pytest.raises(InputError, match="layer 'head', which cannot be pruned: it produces the model's output"):
        _prune(coupled(), ratio=0.5, layer_ratios={"head": 0.5})


def test_coupled_layers_with_different_ratios_is_an_error() -> None:
    with pytest.raises(InputError, match="share their channels"):
        _prune(coupled(), ratio=0.5, layer_ratios={"stem.0": 0.25, "block.3": 0.5})


def test_pruned_architecture_rebuilds_from_the_original_class(tmp_path) -> None:
    model = coupled()
    attrs = rebuild.layer_attrs(model)
    _prune(model, ratio=0.5)
    arch = rebuild.architecture(attrs, model)
    assert arch["dw"] == {"in_channels": 8, "out_channels": 8, "groups": 8}
    with pytest.raises(RuntimeError):
        coupled().load_state_dict(model.state_dict())  # what users hit without the architecture
    rebuild.save(tmp_path, model, arch)
    restored = rebuild.load(tmp_path, coupled())
    with torch.no_grad():
        torch.testing.assert_close(restored(EXAMPLE), model(EXAMPLE))
