"""The strategy through edgecraft's compiler and runner: compile-time errors naming the step, and a real run."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from edgecraft.compile.compiler import compile_plan
from edgecraft.errors import CompileError, InputError
from edgecraft.plan import CompressionPlan
from edgecraft.plan.loading import validate_plan
from edgecraft.registry import build_registry
from edgecraft.runner import prepare, run_plan

HERE = Path(__file__).parent
MODELS = str(HERE / "factorization_models.py")


@functools.cache
def _registry() -> Any:
    return build_registry()


@pytest.fixture(scope="module")
def registry() -> Any:
    return _registry()


def _plan(params: dict[str, Any], *, model: dict[str, Any] | None = None, **extra: Any) -> CompressionPlan:
    raw: dict[str, Any] = {
        "model": model or {"kind": "torch", "factory": f"{MODELS}:make_cnn", "input_shape": [1, 1, 16, 16]},
        "steps": [{"strategy": "factorization", "name": "lowrank", "params": params}],
        "targets": ["ort-cpu"],
        "data": {"calib": {"kind": "digits", "split": "train", "image_size": 16, "max_samples": 128},
                 "test": {"kind": "digits", "split": "test", "image_size": 16, "max_samples": 64}},
        "evaluation": {"dataset": "test"},
        "latency": {"warmup": 2, "repeats": 10, "rounds": 2},
    }
    raw.update(extra)
    return validate_plan(raw, _registry())  # model and data params are typed by their registered kinds


def _compile(plan: CompressionPlan, registry: Any, base_dir: Path = HERE) -> Any:
    run = prepare(plan, registry, base_dir)
    return compile_plan(plan, "ort-cpu", registry, loader=run.loader, datasets=run.datasets)


def test_the_strategy_is_registered(registry: Any) -> None:
    assert "factorization" in registry.strategies


@pytest.mark.parametrize(("params", "message"), [
    ({"rank": 0}, "rank = 0"),
    ({"target": 1.5}, "target = 1.5 is outside"),
    ({"target": 0}, "target = 0 is outside"),
    ({"ratio": 2.0}, "ratio = 2 is outside"),
    ({"energy": -0.1}, "energy = -0.1 is outside"),
    ({"rank": 4, "target": 0.5}, "only one of"),
    ({"selection": "rank"}, "needs params.rank"),
    ({"target": 0.5, "sensitivity_data": "nope"}, "'nope' is not in the plan's data"),
    ({"target": 0.5, "cost": "latency"}, "set params.latency"),
    ({"recover": "finetune"}, "set params.train"),
    ({"recover": "finetune", "train": "missing"}, "'missing' is not in the plan's data"),
    ({"train": "calib"}, "recover is 'none'"),
    ({"target": 0.5, "candidates": [0.5, 1.0]}, "strictly between 0 and 1"),
    ({"ratio": 0.5, "method": "activation_aware"}, "params.method = 'activation_aware' measures"),
    ({"ratio": 0.5, "method": "svd", "whitening": "sequential", "sensitivity_data": "calib"},
     "params.whitening = 'sequential' refits activation-aware factors, but params.method is 'svd'"),
])
def test_bad_params_are_compile_errors_naming_the_step(registry: Any, params: dict[str, Any], message: str) -> None:
    with pytest.raises(CompileError) as info:
        _compile(_plan(params), registry)
    text = str(info.value)
    assert "steps[0] (lowrank)" in text and message in text
    assert info.value.exit_code == 2


def test_target_without_evaluation_data_is_a_compile_error(registry: Any) -> None:
    plan = _plan({"target": 0.5}, evaluation={"dataset": None})
    with pytest.raises(CompileError, match=r"steps\[0\] \(lowrank\).*sensitivity_data"):
        _compile(plan, registry)


def test_onnx_model_source_is_a_compile_error(registry: Any, tmp_path: Path) -> None:
    import torch
    from factorization_models import make_mlp

    path = tmp_path / "mlp.onnx"
    torch.onnx.export(make_mlp(), (torch.zeros(1, 64),), str(path), input_names=["input"], dynamo=False)
    plan = _plan({"ratio": 0.5}, model={"kind": "onnx", "path": str(path)})
    with pytest.raises(CompileError, match=r"steps\[0\] \(lowrank\).*ONNX file"):
        _compile(plan, registry, tmp_path)


def test_resolution_fills_defaults(registry: Any) -> None:
    compiled = _compile(_plan({}), registry)
    step = compiled.steps[0]
    assert step.params["selection"] == "energy" and step.params["energy"] == 0.9
    assert step.implementation.startswith("lowrank-auto/energy")
    compiled = _compile(_plan({"target": 0.4, "cost": "macs"}), registry)
    assert compiled.steps[0].params["sensitivity_data"] == "test"
    assert "test" in compiled.steps[0].needs_data


@pytest.mark.slow
def test_unreachable_target_is_an_input_error_naming_the_step(registry: Any, tmp_path: Path) -> None:
    plan = _plan({"target": 0.01, "candidates": [0.5]})
    with pytest.raises(InputError, match=r"steps\[0\] \(lowrank\).*cannot be reached"):
        run_plan(plan, registry, base_dir=HERE, cache_dir=tmp_path / "cache")


def test_sequential_whitening_on_a_model_auto_gives_plain_svd_is_an_input_error(registry: Any,
                                                                                 tmp_path: Path) -> None:
    plan = _plan({"ratio": 0.5, "whitening": "sequential_refit", "sensitivity_data": "calib"})
    with pytest.raises(InputError, match=r"steps\[0\] \(lowrank\).*method 'auto' chose plain SVD"):
        run_plan(plan, registry, base_dir=HERE, cache_dir=tmp_path / "cache")


@pytest.mark.slow
def test_run_plan_factorizes_recovers_and_measures_on_ort(registry: Any, tmp_path: Path) -> None:
    plan = _plan({"target": 0.5, "recover": "finetune", "train": "calib", "epochs": 1})
    report = run_plan(plan, registry, base_dir=HERE, cache_dir=tmp_path / "cache")
    target = report.targets[0]
    details = target.compressed.steps[0]
    assert details["strategy"] == "factorization" and details["params_ratio"] <= 0.5
    assert details["recovery"]["recovery"] == "finetune" and details["recovery"]["epochs"] == 1
    assert details["eval_loss_after_recovery"] >= 0
    assert target.compressed.size_bytes < 0.6 * target.baseline.size_bytes
    assert 0 <= target.compressed.metrics["top1"] <= 1
    assert np.isfinite(target.compressed.latency_ms.p50)


@pytest.mark.slow
def test_recovery_by_distillation_from_the_original_model(registry: Any, tmp_path: Path) -> None:
    plan = _plan({"ratio": 0.25, "recover": "distill", "train": "calib", "epochs": 1})
    report = run_plan(plan, registry, base_dir=HERE, cache_dir=tmp_path / "cache")
    details = report.targets[0].compressed.steps[0]
    assert details["recovery"]["recovery"] == "distill"
    assert details["factorized_layers"] >= 3


def test_the_example_plan_compiles(registry: Any) -> None:
    from edgecraft.plan.loading import load_plan

    plan, base_dir = load_plan(HERE.parents[2] / "examples" / "factorization" / "plan.yaml", registry)
    compiled = _compile(plan, registry, base_dir)
    assert compiled.steps[0].implementation == "lowrank-auto/greedy target 0.5 of params+finetune"
    assert set(compiled.steps[0].needs_data) == {"calib", "train"}
