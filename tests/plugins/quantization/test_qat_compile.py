"""Compile-time behaviour of ``quantization`` with ``mode: qat``: what it resolves to, and what it refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from edgecraft.errors import EXIT_BAD_INPUT, CompileError, PlanValidationError
from edgecraft.plan import RawPlan
from edgecraft.registry import build_registry
from edgecraft.runner import compile_all, prepare

HERE = Path(__file__).parent
QAT = {"mode": "qat", "calibration_dataset": "calib", "qat": {"epochs": 1}}


@pytest.fixture(scope="module")
def registry() -> Any:
    return build_registry()


def _plan(steps: list[dict[str, Any]], targets: list[str] | None = None,
          model: dict[str, Any] | None = None) -> RawPlan:
    return RawPlan.model_validate({
        "model": model or {"kind": "torch", "factory": "qmodels.py:untrained", "input_shape": [1, 1, 8, 8]},
        "steps": steps, "targets": targets or ["ort-cpu"],
        "data": {"calib": {"kind": "digits", "split": "train", "image_size": 8, "max_samples": 32},
                 "test": {"kind": "digits", "split": "test", "image_size": 8}},
        "evaluation": {"dataset": "test"}})


def _qat(params: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"strategy": "quantization", "name": "qat", "params": {**QAT, **(params or {})}}


def _compile(registry: Any, plan: RawPlan, targets: list[str], base: Path = HERE) -> Any:
    return compile_all(prepare(plan, registry, base), targets)


def _error(registry: Any, plan: RawPlan, target: str = "ort-cpu", base: Path = HERE) -> str:
    with pytest.raises(CompileError) as info:
        _compile(registry, plan, [target], base)
    assert info.value.exit_code == EXIT_BAD_INPUT
    return str(info.value)


@pytest.mark.openvino
def test_qat_is_one_target_neutral_torch_step(registry: Any) -> None:
    compiled = _compile(registry, _plan([_qat()], ["ort-cpu", "openvino-cpu"]), ["ort-cpu", "openvino-cpu"])
    ort_step, ov_step = compiled["ort-cpu"].steps[0], compiled["openvino-cpu"].steps[0]
    assert ort_step.stage == "torch" and ort_step.implementation.startswith("quantization-aware training")
    # Identical on both targets: the builder trains once and both targets share the result (torch_memo).
    assert ort_step.model_dump() == ov_step.model_dump()
    assert ort_step.params["qat"]["dataset"] == "calib" and ort_step.needs_data == ["calib"]


def test_an_onnx_model_source_is_refused_with_the_reason(registry: Any, tmp_path: Path) -> None:
    from qmodels import untrained

    torch.onnx.export(untrained(), (torch.zeros(1, 1, 8, 8),), str(tmp_path / "m.onnx"), dynamo=False,
                      input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "b"}, "y": {0: "b"}})
    text = _error(registry, _plan([_qat()], model={"kind": "onnx", "path": "m.onnx"}), base=tmp_path)
    assert "steps[0] (qat)" in text and "ONNX graph" in text and "cannot train" in text


@pytest.mark.parametrize("after", [
    {"strategy": "pruning", "name": "prune", "params": {"ratio": 0.5}},
    {"strategy": "quantization", "name": "int8", "params": {"calibration_dataset": "calib"}},
])
def test_qat_must_be_the_last_step(registry: Any, after: dict[str, Any]) -> None:
    text = _error(registry, _plan([_qat(), after]))
    assert "must be the plan's last step" in text and f"steps[1] ({after['name']})" in text


def test_a_quantization_step_before_qat_is_refused(registry: Any) -> None:
    before = {"strategy": "quantization", "name": "int8", "params": {"calibration_dataset": "calib"}}
    text = _error(registry, _plan([before, _qat()]))
    assert "steps[1] (qat)" in text and "steps[0] already quantizes" in text


@pytest.mark.parametrize(("params", "field"), [
    ({"keep_float_layers": ["/fc*"]}, "params.keep_float_layers"),
    ({"calibration_method": "entropy"}, "params.calibration_method"),
    ({"activation_type": "int8"}, "params.activation_type"),
    ({"reduce_range": True}, "params.reduce_range"),
    ({"recipe": "transformer"}, "params.recipe"),
    ({"qat": {"dataset": "nope"}}, "params.qat.dataset"),
    ({"calibration_dataset": None, "qat": {}}, "params.qat.dataset"),
])
def test_bad_params_name_the_field(registry: Any, params: dict[str, Any], field: str) -> None:
    text = _error(registry, _plan([_qat(params)]))
    assert field in text and "steps[0] (qat)" in text


@pytest.mark.parametrize(("qat", "field"), [({"epochs": 0}, "qat.epochs"), ({"lr": -1}, "qat.lr"),
                                            ({"loss": "mse"}, "qat.loss"), ({"epoch": 3}, "qat.epoch")])
def test_bad_qat_settings_fail_plan_validation_naming_the_field(registry: Any, qat: dict[str, Any],
                                                                field: str) -> None:
    with pytest.raises(PlanValidationError) as info:
        _compile(registry, _plan([_qat({"qat": qat})]), ["ort-cpu"])
    assert f"steps[0].params.{field}" in str(info.value)


def test_accuracy_aware_on_is_refused(registry: Any) -> None:
    text = _error(registry, _plan([_qat({"accuracy_aware": {"enabled": "on"}})]))
    assert "params.accuracy_aware.enabled" in text and "every layer int8" in text


@pytest.mark.tvm
def test_a_target_without_int8_is_refused_with_the_backends_reason(registry: Any) -> None:
    text = _error(registry, _plan([_qat()], ["tvm-llvm-host"]), "tvm-llvm-host")
    assert "quantization.int8 cannot run on target 'tvm-llvm-host'" in text


@pytest.mark.openvino
def test_the_example_plan_compiles_on_both_targets(registry: Any) -> None:
    from edgecraft.plan.loading import load_plan

    plan, base = load_plan(HERE.parents[2] / "examples" / "qat" / "plan.yaml", registry)
    compiled = compile_all(prepare(plan, registry, base), ["ort-cpu", "openvino-cpu"])
    steps = [compiled[t].steps[0] for t in ("ort-cpu", "openvino-cpu")]
    assert steps[0].model_dump() == steps[1].model_dump() and steps[0].stage == "torch"
    assert steps[0].params["per_channel"] is False and steps[0].params["qat"]["loss"] == "distill"
