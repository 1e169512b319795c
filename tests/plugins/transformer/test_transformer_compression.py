"""Structured pruning, layer-dropping distillation and factorization on a tiny BERT built from a config."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from edgecraft.cli import main
from hf_tiny import SENTENCES, TinyModels

pytestmark = pytest.mark.huggingface

FAST_LATENCY = {"warmup": 1, "repeats": 5, "rounds": 1, "threads": 1}


def load(path: Path, length: int = 16) -> Any:
    from edgecraft.model_source import ModelSourceLoader
    from edgecraft.plugins.sources.huggingface import HuggingFaceParams, HuggingFaceSource

    return ModelSourceLoader(HuggingFaceSource(), HuggingFaceParams(path=str(path), sequence_length=length),
                             path.parent).fresh()


def feeds(handle: Any, n: int = 3) -> list[Any]:
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(handle.module.model.name_or_path), local_files_only=True)
    encoded = tokenizer(SENTENCES[:n], padding="max_length", truncation=True, max_length=16, return_tensors="np")
    return [torch.from_numpy(np.asarray(encoded[name], dtype=np.int64)) for name in handle.io.input_names]


# ---------------------------------------------------------------- the surgery
def test_head_and_ffn_pruning_keeps_shapes_and_config_consistent(tiny: TinyModels) -> None:
    import torch
    from edgecraft.plugins.pruning.params import PruningParams
    from edgecraft.plugins.pruning.transformer import prune_heads_ffn
    from edgecraft.torchkit import encoder as enc

    handle = load(tiny.sentence)
    inputs = feeds(handle)
    with torch.no_grad():
        before = handle.module(*inputs)
    params = PruningParams(mode="heads_ffn", head_ratio=0.5, ffn_ratio=0.5)
    facts = prune_heads_ffn(handle.module, params, where="steps[0] (pruning)", data=None, teacher=None)
    encoder = enc.find_encoder(handle.module)
    assert encoder is not None
    enc.check_consistent(encoder)
    assert facts["encoder_after"] == {"layers": 2, "heads": [1, 1], "ffn": [32, 32]}
    for i in range(2):
        attention = encoder.sub(i, enc.SELF_ATTENTION)
        assert (attention.num_attention_heads, attention.all_head_size) == (1, 16)
        assert encoder.sub(i, enc.QUERY).weight.shape == (16, 32)
        assert encoder.sub(i, enc.ATTN_OUT).weight.shape == (32, 16)
        assert encoder.sub(i, enc.FFN_OUT).weight.shape == (32, 32)
    config = encoder.config
    assert config.intermediate_size == 32 and config.num_attention_heads == 2  # head size stays 32 / 2
    assert all(len(removed) == 1 for removed in config.pruned_heads.values())
    assert facts["encoder_params_ratio"] < 0.6
    with torch.no_grad():
        after = handle.module(*inputs)
    assert after.shape == before.shape


def test_global_scope_keeps_a_head_in_every_layer(tiny: TinyModels) -> None:
    from edgecraft.plugins.pruning.params import PruningParams
    from edgecraft.plugins.pruning.transformer import prune_heads_ffn

    handle = load(tiny.base)
    params = PruningParams(mode="heads_ffn", head_ratio=0.5, ffn_ratio=0.25, scope="global", importance="l1")
    facts = prune_heads_ffn(handle.module, params, where="s", data=None, teacher=None)
    assert all(h >= 1 for h in facts["encoder_after"]["heads"])
    assert facts["heads_after"] == 2 and abs(facts["ffn_after"] - 96) <= 8  # per-layer counts round to 8


@pytest.mark.slow
@pytest.mark.openvino
def test_pruned_export_runs_on_ort_and_openvino(tiny: TinyModels, tmp_path: Path) -> None:
    import onnxruntime as ort
    import openvino as ov
    import torch
    from edgecraft.model_source import export_onnx
    from edgecraft.plugins.pruning.params import PruningParams
    from edgecraft.plugins.pruning.transformer import prune_heads_ffn

    handle = load(tiny.sentence)
    prune_heads_ffn(handle.module, PruningParams(mode="heads_ffn", head_ratio=0.5, ffn_ratio=0.5), where="s",
                    data=None, teacher=None)
    path = tmp_path / "pruned.onnx"
    export_onnx(handle, path, opset=18, exporter="dynamo")
    inputs = feeds(handle, 4)
    with torch.no_grad():
        want = handle.module(*inputs).numpy()
    named = {name: t.numpy() for name, t in zip(handle.io.input_names, inputs, strict=True)}
    got_ort = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, named)[0]
    np.testing.assert_allclose(got_ort, want, atol=1e-4)
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    got_ov = compiled(named)[compiled.output(0)]
    np.testing.assert_allclose(got_ov, want, atol=1e-4)


def test_ffn_only_pruning_reports_no_pruned_heads(tiny: TinyModels) -> None:
    """head_ratio 0: recent transformers' configs have no `pruned_heads` until a head is pruned (was a crash)."""
    from edgecraft.plugins.pruning.params import PruningParams
    from edgecraft.plugins.pruning.transformer import prune_heads_ffn

    handle = load(tiny.sentence)
    facts = prune_heads_ffn(handle.module, PruningParams(mode="heads_ffn", head_ratio=0.0, ffn_ratio=0.5),
                            where="s", data=None, teacher=None)
    assert facts["config"]["pruned_heads"] == {} and facts["encoder_after"]["heads"] == [2, 2]
    assert facts["encoder_after"]["ffn"] == [32, 32]


@pytest.mark.parametrize("round_data", ["all", "split"])
def test_gradual_pruning_recovers_between_rounds_on_all_or_split_data(tiny: TinyModels, round_data: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """``round_data: split``: iterative pruning at the one-shot's cost (each round on its own part of the text)."""
    from edgecraft import torchkit
    from edgecraft.plugins.pruning.params import PruningParams
    from edgecraft.plugins.pruning.transformer import prune_heads_ffn

    handle = load(tiny.sentence)
    teacher = load(tiny.sentence).module.eval()
    inputs = feeds(handle, 6)
    data = torchkit.TorchData.from_arrays({n: t.numpy() for n, t in zip(handle.io.input_names, inputs, strict=True)},
                                          io=handle.io)
    seen: list[list[int]] = []
    real_train = torchkit.train

    def spy(module: Any, train_data: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(sorted(int(i) for i in train_data.indices))
        return real_train(module, train_data, *args, **kwargs)

    monkeypatch.setattr(torchkit, "train", spy)
    params = PruningParams(mode="heads_ffn", head_ratio=0.5, ffn_ratio=0.5, dataset="x", epochs=1, batch_size=3,
                           loss="cosine", hidden_weight=1.0, schedule="gradual", iterations=2, round_data=round_data)
    facts = prune_heads_ffn(handle.module, params, where="s", data=data, teacher=teacher)
    assert [r["round"] for r in facts["rounds"]] == [1, 2]
    assert facts["encoder_after"]["heads"] == [1, 1] and facts["recovery"]["round_data"] == round_data
    assert all("cosine_after_recovery" in r for r in facts["rounds"])
    if round_data == "all":
        assert seen == [list(range(6))] * 2
    else:  # the halves: together every sample once, as one-shot at the same epochs
        assert seen == [[0, 1, 2], [3, 4, 5]]


def test_layer_student_keeps_the_chosen_layers(tiny: TinyModels) -> None:
    import torch
    from edgecraft.plugins.distillation.params import DistillationParams
    from edgecraft.plugins.distillation.strategy import _layer_student, student_layers
    from edgecraft.torchkit import encoder as enc

    assert student_layers(6, None, 2) == [1, 3, 5]
    assert student_layers(6, None, 3) == [2, 5]
    assert student_layers(6, [0, 5], None) == [0, 5]
    teacher = load(tiny.base).module
    student, kept = _layer_student(teacher, DistillationParams(student="layers", every=2, train="x"), "s")
    assert kept == [1]
    encoder = enc.find_encoder(student)
    assert encoder is not None and len(encoder) == 1 and encoder.config.num_hidden_layers == 1
    original = enc.find_encoder(teacher)
    assert original is not None and len(original) == 2  # the teacher is untouched
    for name, p in encoder.layers[0].named_parameters():
        assert torch.equal(p, original.layers[1].get_parameter(name))


def test_distill_with_hidden_and_attention_losses(tiny: TinyModels) -> None:
    from edgecraft import torchkit
    from edgecraft.plugins.distillation.params import DistillationParams, TrainingParams
    from edgecraft.plugins.distillation.strategy import _layer_student
    from edgecraft.plugins.distillation.train import distill

    handle = load(tiny.sentence)
    teacher = handle.module
    student, kept = _layer_student(teacher, DistillationParams(student="layers", layers=[1], train="x"), "s")
    inputs = feeds(handle, 6)
    data = torchkit.TorchData.from_arrays({n: t.numpy() for n, t in zip(handle.io.input_names, inputs, strict=True)},
                                          io=handle.io)
    params = TrainingParams(loss="cosine", hidden_weight=1.0, attention_weight=1.0, epochs=2, batch_size=3,
                            validation_fraction=0, lr=1e-3)
    result = distill(teacher, student, data, params, layer_map=kept)
    assert len(result.history) == 2 and result.history[-1]["feature_loss"] is not None
    assert teacher.model.config._attn_implementation == student.model.config._attn_implementation != "eager"


def test_trimmed_batches_give_the_padded_outputs(tiny: TinyModels) -> None:
    import torch
    from edgecraft import torchkit

    handle = load(tiny.sentence)
    inputs = feeds(handle, 6)
    data = torchkit.TorchData.from_arrays({n: t.numpy() for n, t in zip(handle.io.input_names, inputs, strict=True)},
                                          io=handle.io)
    assert data.padding_mask() == handle.io.input_names.index("attention_mask")
    full = torchkit.predict(handle.module, data)
    batches = list(data.batches(3, shuffle=True, seed=0, trim=True))
    assert any(b.trimmed for b in batches)
    with torch.no_grad():
        for batch in batches:
            out = torchkit.first_output(handle.module(*batch.inputs))
            assert torch.allclose(out, full[batch.index], atol=1e-5)


def test_activation_aware_factorization_keeps_the_embeddings_closer(tiny: TinyModels) -> None:
    import torch
    from edgecraft import torchkit
    from edgecraft.plugins.factorization.engine import FactorizationConfig, factorize_model

    handle = load(tiny.sentence)
    inputs = feeds(handle, 8)
    data = torchkit.TorchData.from_arrays({n: t.numpy() for n, t in zip(handle.io.input_names, inputs, strict=True)},
                                          io=handle.io)
    reference = torchkit.predict(handle.module, data)
    cosine = {}
    for method in ("svd", "activation_aware"):
        config = FactorizationConfig(selection="ratio", ratio=0.25, multiple=4, include=("model.encoder.*",),
                                     linear_method=method)
        result = factorize_model(handle.module, handle.example_inputs(1), config, calibration=data)
        assert {row.method for row in result.factorized} == {method}
        out = torchkit.predict(result.module, data)
        cosine[method] = float(torch.nn.functional.cosine_similarity(out, reference).mean())
    assert cosine["activation_aware"] > cosine["svd"]


# ---------------------------------------------------------------- through the CLI
def plan(steps: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": "tiny-bert-compress",
        "model": {"kind": "huggingface", "path": "model", "sequence_length": 16},
        "data": {"sentences": {"kind": "text", "path": "sentences.txt"}},
        "evaluation": {"dataset": "sentences", "metrics": ["cosine"], "batch_size": 4},
        "latency": FAST_LATENCY,
        "steps": steps,
        "targets": ["ort-cpu"],
        # every recipe here makes the encoder smaller: a judged contract (a run with none is exit 2)
        "contracts": [{"kind": "size", "min_ratio": 1.0}],
    }


def run_cli(workdir: Path, plan_dict: dict[str, Any], command: str = "run") -> tuple[int, dict[str, Any] | None]:
    path = workdir / "plan.yaml"
    path.write_text(yaml.safe_dump(plan_dict))
    report = workdir / "report.json"
    report.unlink(missing_ok=True)
    args = [command, str(path)] + (["--target", "ort-cpu"] if command == "compile" else [])
    if command == "run":
        args += ["--report-json", str(report), "--cache-dir", str(workdir / "cache"), "-q"]
    code = main(args)
    return code, json.loads(report.read_text()) if report.exists() else None


@pytest.fixture
def workdir(tmp_path: Path, tiny: TinyModels) -> Path:
    shutil.copytree(tiny.sentence, tmp_path / "model")
    (tmp_path / "sentences.txt").write_text("\n".join(SENTENCES * 3) + "\n")
    return tmp_path


PRUNE = {"strategy": "pruning", "params": {"mode": "heads_ffn", "head_ratio": 0.5, "ffn_ratio": 0.5,
                                            "dataset": "sentences", "epochs": 1, "batch_size": 6, "loss": "cosine"}}
DISTILL = {"strategy": "distillation", "params": {"student": "layers", "every": 2, "train": "sentences",
                                                  "loss": "cosine", "hidden_weight": 1.0, "attention_weight": 1.0,
                                                  "epochs": 1, "batch_size": 6, "validation_fraction": 0}}
FACTORIZE = {"strategy": "factorization", "params": {"ratio": 0.5, "multiple": 4, "include": ["model.encoder.*"],
                                                     "recover": "distill", "train": "sentences", "epochs": 1,
                                                     "batch_size": 6, "hidden_weight": 1.0,
                                                     "whitening": "sequential_refit"}}


@pytest.mark.slow
@pytest.mark.parametrize("step", [PRUNE, DISTILL, FACTORIZE], ids=["prune", "distill", "factorize"])
def test_recipes_run_end_to_end(workdir: Path, capsys: pytest.CaptureFixture[str], step: dict[str, Any]) -> None:
    code, report = run_cli(workdir, plan([step]))
    assert code == 0, capsys.readouterr()
    assert report is not None
    target = report["targets"][0]
    assert 0 < target["compressed"]["metrics"]["cosine"] <= 1.0 + 1e-6
    details = json.dumps(report)
    if step is PRUNE:
        assert '"heads_after": 2' in details  # 2 layers x 1 head left
    if step is FACTORIZE:
        assert "cosine_before_recovery" in details and "cosine_after_recovery" in details
        assert '"linear_method": "activation_aware"' in details  # auto on a transformer with data
        factorized = report["targets"][0]["compressed"]["steps"][0]["factorized_layers"]
        assert factorized >= 1
        assert f"sequential_refit whitening: {factorized} of {factorized} factorized Linears refitted" in details


@pytest.mark.parametrize(("step", "message"), [
    ({"strategy": "pruning", "params": {"mode": "heads_ffn", "head_ratio": 0.9}},
     "params.head_ratio = 0.9 would remove every attention head"),
    ({"strategy": "pruning", "params": {"mode": "heads_ffn", "head_ratio": 1.0}}, "params.head_ratio = 1"),
    ({"strategy": "pruning", "params": {"mode": "heads_ffn", "ffn_ratio": 0.5, "layer_ratios": {"7": 0.5}}},
     "params.layer_ratios['7'] matches no encoder layer"),
    ({"strategy": "pruning", "params": {"mode": "heads_ffn", "ratio": 0.5}}, "do not apply to mode: heads_ffn"),
    ({"strategy": "pruning", "params": {"mode": "heads_ffn", "ffn_ratio": 0.5, "dataset": "sentences", "epochs": 1,
                                        "round_data": "split"}},
     "params.round_data only applies to schedule: gradual"),
    ({"strategy": "pruning", "params": {"mode": "heads_ffn", "ffn_ratio": 0.5, "dataset": "sentences", "epochs": 1,
                                        "schedule": "gradual", "round_data": "half"}}, "round_data"),
    ({"strategy": "pruning", "params": {"mode": "structured", "ratio": 0.5, "round_data": "split"}},
     "do not apply to mode: structured"),
    ({"strategy": "pruning", "params": {"mode": "heads_ffn", "ffn_ratio": 0.5, "dataset": "sentences",
                                        "reconstruct": "lstsq"}}, "reconstruct"),
    ({"strategy": "pruning", "params": {"mode": "heads_ffn", "ffn_ratio": 0.5, "reconstruct": "least_squares"}},
     "params.reconstruct: least_squares re-fits the kept weights on calibration sentences and needs params.dataset"),
    ({"strategy": "pruning", "params": {"mode": "heads_ffn", "ffn_ratio": 0.5, "reconstruct": "mask"}},
     "params.reconstruct: mask re-fits the kept weights"),
    ({"strategy": "pruning", "params": {"mode": "heads_ffn", "ffn_ratio": 0.5, "reconstruct_samples": 0,
                                        "dataset": "sentences"}}, "reconstruct_samples"),
    ({"strategy": "pruning", "params": {"mode": "structured", "ratio": 0.5, "reconstruct": "none"}},
     "do not apply to mode: structured"),
    ({"strategy": "distillation", "params": {"student": "layers", "layers": [0, 5], "train": "sentences"}},
     "params.layers: layer(s) [5] out of range"),
    ({"strategy": "distillation", "params": {"student": "layers", "layers": [0, 1], "train": "sentences"}},
     "keeps all 2 layers"),
    ({"strategy": "distillation", "params": {"student": "layers", "every": 3, "train": "sentences"}},
     "params.every: every 3 is more than"),
    ({"strategy": "distillation", "params": {"student": "scaled", "every": 2, "train": "sentences"}},
     "only apply to student: layers"),
    ({"strategy": "factorization", "params": {"ratio": 0.5, "method": "whitened"}}, "method"),
    ({"strategy": "factorization", "params": {"ratio": 0.5, "method": "activation_aware"}},
     "params.method = 'activation_aware' measures the Linear layers' inputs"),
    ({"strategy": "distillation", "params": {"student": "layers", "train": "sentences", "schedule": "warmup_cosine",
                                             "warmup": 1.5}}, "warmup"),
])
def test_bad_params_exit_2_naming_step_and_field(workdir: Path, capsys: pytest.CaptureFixture[str],
                                                 step: dict[str, Any], message: str) -> None:
    code, _ = run_cli(workdir, plan([copy.deepcopy(step)]), command="compile")
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and "steps[0]" in err
