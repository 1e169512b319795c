"""Relation distillation (``relation_weight``) and ``imitate`` on a tiny BERT: trainer, plan checks, CLI run."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest
from hf_tiny import SENTENCES, TinyModels
from test_transformer_compression import DISTILL, feeds, load, plan, run_cli

pytestmark = pytest.mark.huggingface


@pytest.fixture
def workdir(tmp_path: Path, tiny: TinyModels) -> Path:
    shutil.copytree(tiny.sentence, tmp_path / "model")
    (tmp_path / "sentences.txt").write_text("\n".join(SENTENCES * 3) + "\n")
    return tmp_path


def _data(handle: Any, n: int = 6) -> Any:
    from edgecraft import torchkit

    inputs = feeds(handle, n)
    return torchkit.TorchData.from_arrays({k: t.numpy() for k, t in zip(handle.io.input_names, inputs, strict=True)},
                                          io=handle.io)


def test_relation_term_is_zero_for_the_teacher_itself_and_trains_a_student(tiny: TinyModels) -> None:
    import torch
    from edgecraft.plugins.distillation.losses import RelationMatch
    from edgecraft.plugins.distillation.params import DistillationParams, TrainingParams
    from edgecraft.plugins.distillation.strategy import _layer_student
    from edgecraft.plugins.distillation.train import distill
    from edgecraft.torchkit import LayerTap
    from edgecraft.torchkit import encoder as enc

    handle = load(tiny.sentence)
    teacher = handle.module
    data = _data(handle)
    # the teacher against a copy of itself: its relations match, the term is 0
    twin = copy.deepcopy(teacher)
    t_enc, s_enc = enc.find_encoder(teacher), enc.find_encoder(twin)
    assert t_enc is not None and s_enc is not None
    match = RelationMatch(t_enc.prefix, twin, s_enc.prefix, [0, 1], weight=1.0, heads=2,
                          mask_input=data.padding_mask())
    tap = LayerTap(teacher, match.teacher_layers)
    inputs = feeds(handle, 3)
    with torch.no_grad():
        teacher(*inputs)
        twin(*inputs)
    assert match.mask is not None and match.mask.shape == inputs[0].shape
    assert float(match.loss(tap.values())) == pytest.approx(0.0, abs=1e-6)
    tap.close()
    match.close()
    # a one-layer student trained with cosine + relations: the feature term is recorded and falls
    student, _ = _layer_student(teacher, DistillationParams(student="layers", layers=[1], train="x"), "s")
    params = TrainingParams(loss="cosine", relation_weight=1.0, epochs=4, batch_size=3, validation_fraction=0,
                            lr=3e-3, schedule="none")
    result = distill(teacher, student, data, params, layer_map=[0])
    losses = [row["feature_loss"] for row in result.history]
    assert all(v is not None and v > 0 for v in losses) and losses[-1] < losses[0]
    assert not student._forward_pre_hooks  # the mask hook is removed after training


@pytest.mark.slow
def test_plan_with_relations_and_imitate_runs(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    step = copy.deepcopy(DISTILL)
    step["params"].update(every=None, layers=[0], imitate=[1], attention_weight=0.0, relation_weight=1.0)
    del step["params"]["every"]
    code, report = run_cli(workdir, plan([step]))
    assert code == 0, capsys.readouterr()
    assert report is not None
    text = str(report)
    assert "relation=1" in text and "'student_layers_imitate': [1]" in text


@pytest.mark.parametrize(("params", "message"), [
    ({"layers": [0], "imitate": [0, 1]}, "params.imitate: [0, 1] names 2 teacher layers for a student of 1 layers"),
    ({"layers": [0], "imitate": [4]}, "params.imitate: layer(s) [4] out of range"),
    ({"relation_weight": -1}, "relation_weight"),
])
def test_bad_relation_and_imitate_params_exit_2(workdir: Path, capsys: pytest.CaptureFixture[str],
                                                params: dict[str, Any], message: str) -> None:
    step = {"strategy": "distillation", "params": {"student": "layers", "train": "sentences", **params}}
    code, _ = run_cli(workdir, plan([step]), command="compile")
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and "steps[0]" in err


def test_imitate_needs_student_layers(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    step = {"strategy": "distillation", "params": {"student": "scaled", "imitate": [1], "train": "sentences"}}
    code, _ = run_cli(workdir, plan([step]), command="compile")
    assert code == 2 and "only apply to student: layers" in capsys.readouterr().err
