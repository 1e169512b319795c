"""The ``distillation`` step in plans: compile-time errors name the step, and plans run end to end on
ort-cpu (a width-scaled student, and recovery of a pruned model against the original)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from edgecraft.errors import CompileError, InputError
from edgecraft.plan.loading import validate_plan
from edgecraft.registry import build_registry
from edgecraft.runner import compile_all, prepare

HERE = Path(__file__).parent
TRAIN = {"kind": "digits", "split": "train", "image_size": 8, "max_samples": 160}
TEST = {"kind": "digits", "split": "test", "image_size": 8, "max_samples": 64}


@pytest.fixture(scope="module")
def registry() -> Any:
    return build_registry()


def _plan(registry: Any, params: dict[str, Any], *, steps: list[dict[str, Any]] | None = None,
          model: dict[str, Any] | None = None, data: dict[str, Any] | None = None, **extra: Any) -> Any:
    doc = {
        "model": model or {"kind": "torch", "factory": "distill_models:teacher", "input_shape": [1, 1, 8, 8]},
        "steps": steps or [{"strategy": "distillation", "name": "kd", "params": params}],
        "targets": ["ort-cpu"],
        "data": data if data is not None else {"train": TRAIN},
        **extra,
    }
    return validate_plan(doc, registry)


def _compile(registry: Any, params: dict[str, Any], **kw: Any) -> Any:
    plan = _plan(registry, params, **kw)
    return compile_all(prepare(plan, registry, HERE), ["ort-cpu"])["ort-cpu"]


def test_resolves_with_defaults_filled(registry: Any) -> None:
    step = _compile(registry, {"train": "train", "width": 0.25}).steps[0]
    assert step.strategy == "distillation" and step.stage == "torch" and step.needs_data == ["train"]
    assert step.implementation == "torch-kd:kl(T=4):student=scaled:teacher=input"
    assert step.params["alpha"] == 0.7 and step.params["optimizer"] == "adam"
    assert any("parameters" in note for note in step.notes)  # the scaled size, found at compile time


def test_factory_student_resolves(registry: Any) -> None:
    step = _compile(registry, {"train": "train", "student": "distill_models:small_student", "loss": "mse"}).steps[0]
    assert step.implementation == "torch-kd:logit-mse:student=factory:teacher=input"
    assert any("student factory distill_models:small_student" in note for note in step.notes)


@pytest.mark.parametrize("params, message", [
    ({}, r"steps\[0\] \(kd\).* distillation training needs a dataset: set params.train"),
    ({"train": "nope"}, r"steps\[0\] \(kd\).* params.train = 'nope' is not in the plan's data"),
    ({"train": "train", "validation": "val"}, r"params.validation = 'val' is not in the plan's data"),
    ({"train": "train", "student": "distill_models:wrong_classes_student"},
     r"steps\[0\] \(kd\).* outputs shape \[2, 7\] but the teacher outputs \[2, 10\]"),
    ({"train": "train", "student": "distill_models:wrong_input_student"},
     r"steps\[0\] \(kd\).* fails on an input of shape \[2, 1, 8, 8\]"),
    ({"train": "train", "student": "distill_models:not_a_module"}, r"steps\[0\] \(kd\).* expected a torch nn.Module"),
    ({"train": "train", "student": "distill_models:raising_student"}, r"raised RuntimeError: checkpoint missing"),
    ({"train": "train", "student": "distill_models:missing"}, r"has no attribute 'missing'"),
    ({"train": "train", "student": "current"}, r"steps\[0\] \(kd\).* this is the first step"),
    ({"train": "train", "student": "distill_models:small_student", "width": 0.3},
     r"params \['width'\] only apply to student: scaled"),
    ({"train": "train", "features": [{"teacher": "stem.9", "student": "stem.0"}]},
     r"params.features\[\].teacher: the teacher has no layer named \['stem.9'\]"),
])
def test_compile_errors_name_the_step(registry: Any, params: dict[str, Any], message: str) -> None:
    with pytest.raises(CompileError, match=message):
        _compile(registry, params)


def test_training_data_of_the_wrong_shape(registry: Any) -> None:
    data = {"train": {**TRAIN, "image_size": 16}}
    with pytest.raises(CompileError, match=r"steps\[0\] \(kd\).* params.train = 'train': its samples have shape "
                                           r"\[1, 16, 16\] but the model takes \[1, 8, 8\]"):
        _compile(registry, {"train": "train"}, data=data)


def test_unscalable_teacher_fails_at_compile_time(registry: Any) -> None:
    model = {"kind": "torch", "factory": "distill_models:opaque_teacher", "input_shape": [1, 1, 8, 8]}
    with pytest.raises(CompileError, match=r"steps\[0\] \(kd\).* no Conv/Linear layer to scale"):
        _compile(registry, {"train": "train"}, model=model)


def test_onnx_model_is_refused(registry: Any, tmp_path: Path) -> None:
    import torch
    from distill_models import teacher

    path = tmp_path / "m.onnx"
    torch.onnx.export(teacher(), (torch.zeros(1, 1, 8, 8),), str(path), dynamo=False)
    plan = _plan(registry, {"train": "train"}, model={"kind": "onnx", "path": str(path)})
    with pytest.raises(CompileError, match=r"steps\[0\] \(kd\).* plan's model is an ONNX file"):
        compile_all(prepare(plan, registry, tmp_path), ["ort-cpu"])


def test_bad_params_are_plan_errors(registry: Any) -> None:
    with pytest.raises(InputError, match="temperature"):
        _plan(registry, {"train": "train", "temperature": 0})
    with pytest.raises(InputError, match="student"):
        _plan(registry, {"train": "train", "student": "just-a-name"})
    with pytest.raises(InputError, match="distil the model into itself"):
        _plan(registry, {"train": "train", "student": "current", "teacher": "input"})


@pytest.mark.slow
def test_scaled_student_runs_end_to_end_on_ort(registry: Any, tmp_path: Path) -> None:
    from edgecraft.runner import run_plan

    plan = _plan(registry, {"train": "train", "width": 0.5, "epochs": 2, "batch_size": 32},
                 data={"train": TRAIN, "test": TEST}, evaluation={"dataset": "test"},
                 latency={"repeats": 10, "rounds": 2, "warmup": 1})
    report = run_plan(plan, registry, base_dir=HERE, cache_dir=tmp_path / "cache")
    target = report.targets[0]
    details = target.compressed.steps[0]
    assert details["strategy"] == "distillation" and details["teacher"] == "input"
    assert details["student_params"] < 0.35 * details["teacher_params"]
    assert details["epochs_run"] == 2 and details["teacher_cached"] is True
    assert target.compressed.size_bytes < 0.5 * target.baseline.size_bytes


@pytest.mark.slow
def test_pruning_then_distillation_recovers_against_the_original(registry: Any, tmp_path: Path) -> None:
    """Issue 5 point 4: a following `student: current` step fine-tunes the pruned model with the
    plan's original model as teacher."""
    from edgecraft.runner import run_plan

    steps = [{"strategy": "pruning", "name": "prune", "params": {"ratio": 0.5}},
             {"strategy": "distillation", "name": "recover",
              "params": {"train": "train", "student": "current", "epochs": 2, "batch_size": 32}}]
    plan = _plan(registry, {}, steps=steps, data={"train": TRAIN, "test": TEST}, evaluation={"dataset": "test"},
                 latency={"repeats": 10, "rounds": 2, "warmup": 1})
    compiled = compile_all(prepare(plan, registry, HERE), ["ort-cpu"])["ort-cpu"]
    assert compiled.steps[1].implementation.endswith("student=current:teacher=original")
    report = run_plan(plan, registry, base_dir=HERE, cache_dir=tmp_path / "cache")
    recover = report.targets[0].compressed.steps[1]
    assert recover["teacher"] == "original" and recover["student"] == "current"
    # The teacher is the unpruned original; the student keeps the pruned architecture.
    assert recover["student_params"] < 0.5 * recover["teacher_params"]


def test_file_student_is_checked_relative_to_the_plan_folder(registry: Any, tmp_path: Path) -> None:
    (tmp_path / "my_student.py").write_text(
        "from torch import nn\n"
        "def good():\n    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))\n"
        "def bad():\n    return nn.Sequential(nn.Flatten(), nn.Linear(64, 3))\n")
    plan = _plan(registry, {"train": "train", "student": "my_student.py:good"})
    step = compile_all(prepare(plan, registry, tmp_path), ["ort-cpu"])["ort-cpu"].steps[0]
    # The reference stays relative (the cache key must not depend on where the plan is checked out).
    assert step.params["student"] == "my_student.py:good"
    plan = _plan(registry, {"train": "train", "student": "my_student.py:bad"})
    with pytest.raises(CompileError, match=r"steps\[0\] \(kd\).* outputs shape \[2, 3\]"):
        compile_all(prepare(plan, registry, tmp_path), ["ort-cpu"])


def test_example_plans_compile(registry: Any) -> None:
    from edgecraft.plan.loading import load_plan

    examples = HERE.parents[2] / "examples" / "distillation"
    for name in ("student.yaml", "recover.yaml"):
        plan, base = load_plan(examples / name, registry)
        steps = compile_all(prepare(plan, registry, base), ["ort-cpu"])["ort-cpu"].steps
        assert steps[-1].strategy == "distillation"
