"""Compile-time behaviour of the quantization step: per-target resolution and clear errors (exit code 2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from edgecraft.cpu import has_vnni
from edgecraft.errors import EXIT_BAD_INPUT, CompileError, InputError
from edgecraft.plan import RawPlan
from edgecraft.registry import build_registry
from edgecraft.runner import compile_all, prepare

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def registry() -> Any:
    return build_registry()


def _plan(params: dict[str, Any], target: str = "ort-cpu", *, contract: bool = False) -> RawPlan:
    data: dict[str, Any] = {
        "calib": {"kind": "digits", "split": "train", "image_size": 8, "max_samples": 32},
        "test": {"kind": "digits", "split": "test", "image_size": 8},
    }
    plan: dict[str, Any] = {
        "model": {"kind": "torch", "factory": "qmodels.py:untrained", "input_shape": [1, 1, 8, 8]},
        "steps": [{"strategy": "quantization", "name": "int8", "params": params}],
        "targets": [target], "data": data, "evaluation": {"dataset": "test"},
    }
    if contract:
        plan["contracts"] = [{"kind": "accuracy", "max_drop": 0.01}]
    return RawPlan.model_validate(plan)


def _compile(registry: Any, plan: RawPlan, target: str = "ort-cpu") -> Any:
    return compile_all(prepare(plan, registry, HERE), [target])[target]


def _error(registry: Any, plan: RawPlan, target: str = "ort-cpu") -> CompileError:
    with pytest.raises(CompileError) as info:
        _compile(registry, plan, target)
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert "steps[0] (int8)" in str(info.value)
    return info.value


def test_ort_defaults_resolve_to_per_channel_u8s8_qdq(registry: Any) -> None:
    (step,) = _compile(registry, _plan({"calibration_dataset": "calib"})).steps
    assert step.stage == "onnx"
    assert step.implementation.startswith("onnxruntime.quantization QDQ static (per-channel, U8S8, minmax)")
    assert step.params["activation_type"] == "uint8" and step.params["weight_type"] == "int8"
    # Filled from the CPU's features, never left null: off with VNNI (int32 accumulation), on without it.
    assert step.params["reduce_range"] is (not has_vnni())
    assert step.params["accuracy_aware"]["enabled"] == "off"
    assert step.needs_data == ["calib"]


def test_accuracy_contract_turns_the_loop_on(registry: Any) -> None:
    (step,) = _compile(registry, _plan({"calibration_dataset": "calib"}, contract=True)).steps
    assert step.params["accuracy_aware"]["enabled"] == "on"


def test_static_needs_a_calibration_dataset(registry: Any) -> None:
    err = _error(registry, _plan({}))
    assert "params.calibration_dataset" in str(err)


def test_unknown_calibration_dataset(registry: Any) -> None:
    err = _error(registry, _plan({"calibration_dataset": "nope"}))
    assert "'nope' is not in the plan's data" in str(err)


def test_weight_only_is_refused_on_ort(registry: Any) -> None:
    err = _error(registry, _plan({"mode": "weight_only"}))
    assert "weight_only" in str(err) and "dynamic" in str(err)


def test_dynamic_needs_no_calibration_on_ort(registry: Any) -> None:
    (step,) = _compile(registry, _plan({"mode": "dynamic"})).steps
    assert "dynamic" in step.implementation
    assert step.needs_data == []


def test_accuracy_aware_on_without_contract(registry: Any) -> None:
    err = _error(registry, _plan({"calibration_dataset": "calib", "accuracy_aware": {"enabled": "on"}}))
    assert "no accuracy contract" in str(err)


def test_bad_params_are_rejected_by_the_schema(registry: Any) -> None:
    from edgecraft.errors import PlanValidationError

    with pytest.raises((PlanValidationError, InputError, ValueError)):
        _compile(registry, _plan({"calibration_dataset": "calib", "calibration_method": "kl"}))


needs_tvm = pytest.mark.tvm


@needs_tvm
def test_tvm_target_is_a_compile_error_that_says_why(registry: Any) -> None:
    err = _error(registry, _plan({"calibration_dataset": "calib"}, "tvm-llvm-host"), "tvm-llvm-host")
    text = str(err)
    assert "TVM 0.27" in text and "fp32" in text and "QLinearConv" in text


needs_nncf = pytest.mark.openvino


@needs_nncf
def test_openvino_resolves_to_nncf(registry: Any) -> None:
    (step,) = _compile(registry, _plan({"calibration_dataset": "calib"}, "openvino-cpu"), "openvino-cpu").steps
    assert step.stage == "native" and step.implementation.startswith("nncf.quantize (")
    (step,) = _compile(registry, _plan({"calibration_dataset": "calib"}, "openvino-cpu", contract=True),
                       "openvino-cpu").steps
    assert step.implementation.startswith("nncf.quantize_with_accuracy_control")
    (step,) = _compile(registry, _plan({"mode": "weight_only"}, "openvino-cpu"), "openvino-cpu").steps
    assert step.implementation.startswith("nncf.compress_weights")


@needs_nncf
@pytest.mark.parametrize(("params", "fragment"), [
    ({"mode": "dynamic"}, "'dynamic' is not available on OpenVINO"),
    ({"calibration_dataset": "calib", "calibration_method": "entropy"}, "'entropy' is not available in NNCF"),
    ({"calibration_dataset": "calib", "activation_type": "int8"}, "cannot be forced on OpenVINO"),
])
def test_openvino_refuses_what_nncf_cannot_do(registry: Any, params: dict[str, Any], fragment: str) -> None:
    assert fragment in str(_error(registry, _plan(params, "openvino-cpu"), "openvino-cpu"))


# ---------------------------------------------------------------- calibration data checks (run time)
class _Ctx:
    """The slice of RunContext that calibration_feeds uses: a dataset bound to a one-input model."""

    def __init__(self, x: np.ndarray) -> None:
        from types import SimpleNamespace

        from edgecraft.datasets import Dataset, make_dataset
        from edgecraft.modelio import ModelIO

        io = ModelIO.single("input", (1, 1, 8, 8))
        self._x = x
        self._io = io
        self._make = lambda: make_dataset("calib", {"x": x}, None) if len(x) else Dataset("calib", {"x": x}, None)
        self.step = SimpleNamespace(where="steps[0] (int8)")
        self.target = SimpleNamespace(label="ort-cpu")

    def feeds(self, name: str) -> Any:
        return self._make().bind(self._io)


def _samples(x: np.ndarray) -> np.ndarray:
    from edgecraft.plugins.quantization.calibration import calibration_feeds

    feeds = calibration_feeds(_Ctx(x), "calib", 16)  # type: ignore[arg-type]
    return np.concatenate([f["input"] for f in feeds], axis=0)


def test_empty_calibration_set_names_the_step() -> None:
    with pytest.raises(InputError, match=r"steps\[0\] \(int8\).*'calib' is empty") as info:
        _samples(np.zeros((0, 1, 8, 8), np.float32))
    assert info.value.exit_code == EXIT_BAD_INPUT


def test_misshaped_calibration_set_names_the_step() -> None:
    with pytest.raises(InputError, match=r"steps\[0\] \(int8\).*shape \[1, 16, 16\].*\[1, 8, 8\]"):
        _samples(np.zeros((4, 1, 16, 16), np.float32))


def test_non_finite_calibration_samples() -> None:
    x = np.zeros((4, 1, 8, 8), np.float32)
    x[2, 0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        _samples(x)


def test_calibration_samples_are_capped() -> None:
    assert _samples(np.ones((40, 1, 8, 8), np.float32)).shape == (16, 1, 8, 8)
