"""Plans on executorch-xnnpack: what compiles (torch-stage steps, PT2E int8), what is refused at compile time
and why (an ONNX model, ONNX-stage steps, int8 params XNNPACK has no counterpart for), and int8 end to end
through `edgecraft run`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from edgecraft.errors import EXIT_BAD_INPUT, CompileError
from edgecraft.plan import RawPlan
from edgecraft.registry import build_registry
from edgecraft.runner import compile_all, prepare

pytestmark = pytest.mark.executorch

HERE = Path(__file__).parent
REPO = HERE.parents[2]
TARGET = "executorch-xnnpack"


@pytest.fixture(scope="module")
def registry() -> Any:
    return build_registry()


def _plan(steps: list[dict[str, Any]], *, model: dict[str, Any] | None = None, contract: bool = False) -> RawPlan:
    plan: dict[str, Any] = {
        "model": model or {"kind": "torch", "factory": "etmodels.py:trained", "input_shape": [1, 1, 8, 8]},
        "steps": steps, "targets": [TARGET],
        "data": {"calib": {"kind": "digits", "split": "train", "image_size": 8, "max_samples": 64},
                 "test": {"kind": "digits", "split": "test", "image_size": 8}},
        "evaluation": {"dataset": "test"},
    }
    if contract:
        plan["contracts"] = [{"kind": "accuracy", "max_drop": 0.01}]
    return RawPlan.model_validate(plan)


def _compile(registry: Any, plan: RawPlan) -> Any:
    return compile_all(prepare(plan, registry, HERE), [TARGET])[TARGET]


def _error(registry: Any, plan: RawPlan) -> CompileError:
    with pytest.raises(CompileError) as info:
        _compile(registry, plan)
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert TARGET in str(info.value)
    return info.value


INT8 = {"strategy": "quantization", "name": "int8", "params": {"calibration_dataset": "calib"}}


def test_int8_is_a_torch_stage_pt2e_step_with_every_torch_strategy(registry: Any) -> None:
    steps = [{"strategy": "pruning", "params": {"mode": "structured", "ratio": 0.25, "epochs": 0}},
             {"strategy": "factorization", "params": {"ratio": 0.5}}, INT8]
    compiled = _compile(registry, _plan(steps))
    assert [s.stage for s in compiled.steps] == ["torch", "torch", "torch"]
    int8 = compiled.steps[2]
    assert int8.implementation.startswith("PT2E") and "XNNPACK quantizer" in int8.implementation
    assert int8.params["mode"] == "static" and int8.params["activation_type"] == "int8"
    assert int8.needs_data == ["calib"]


def test_an_onnx_model_cannot_feed_torch_export(registry: Any, tmp_path: Path) -> None:
    from edgecraft.testing.models import cnn_onnx

    path = cnn_onnx(tmp_path / "m.onnx")
    err = _error(registry, _plan([], model={"kind": "onnx", "path": str(path)}))
    assert "model:" in str(err) and "torch.export" in str(err)


class _GraphStep:
    """A minimal ONNX-stage strategy (one that does not check the target itself): the compiler must refuse it."""

    from edgecraft.hookspecs import hookimpl

    @staticmethod
    @hookimpl
    def edgecraft_register_strategies(register: Any) -> None:
        from edgecraft.models import Stage
        from edgecraft.strategy import Resolution, Strategy, StrategyParams

        class GraphEdit(Strategy):
            name = "doc-graph-edit"
            params_model = StrategyParams
            summary = "edits the ONNX graph"

            def resolve(self, params: Any, ctx: Any) -> Resolution:
                return Resolution(stage=Stage.ONNX, implementation="onnx graph edit", params=params)

            def apply(self, step: Any, model: Any, ctx: Any) -> Any:
                raise AssertionError("never built: refused at compile time")

        register(GraphEdit)


def test_an_onnx_stage_step_is_refused_naming_it() -> None:
    registry = build_registry(extra_plugins=[_GraphStep])
    err = _error(registry, _plan([{"strategy": "doc-graph-edit", "name": "edit"}]))
    assert "steps[0] (edit)" in str(err) and "works on the ONNX graph" in str(err)
    # the built-in ONNX-stage strategy of the example plugin refuses on its own terms, at compile time too
    err = _error(registry, _plan([{"strategy": "fp16-weights", "name": "half"}]))
    assert "steps[0] (half)" in str(err)


@pytest.mark.parametrize(("params", "words"), [
    ({"mode": "weight_only"}, "weight_only"),
    ({"calibration_method": "entropy"}, "calibration_method 'entropy'"),
    ({"activation_type": "uint8"}, "uint8"),
    ({"keep_float_ops": ["Conv"]}, "keep_float_ops"),
])
def test_int8_params_without_an_xnnpack_counterpart_are_refused(registry: Any, params: dict[str, Any],
                                                                words: str) -> None:
    step = {**INT8, "params": {"calibration_dataset": "calib", **params}}
    assert words in str(_error(registry, _plan([step])))


def test_accuracy_aware_int8_is_refused_with_the_way_out(registry: Any) -> None:
    err = _error(registry, _plan([INT8], contract=True))
    assert "accuracy-aware" in str(err) and "accuracy_aware.enabled" in (err.hint or "")
    off = {**INT8, "params": {"calibration_dataset": "calib", "accuracy_aware": {"enabled": "off"}}}
    assert _compile(registry, _plan([off], contract=True)).steps[0].stage == "torch"


FP16 = {"strategy": "quantization", "name": "half", "params": {"mode": "fp16"}}


def test_fp16_step_is_refused_on_a_cpu_without_fp16_arithmetic(registry: Any) -> None:
    from edgecraft.backends.executorch.options import fp16_arithmetic

    if fp16_arithmetic():
        pytest.skip("this CPU computes in fp16")
    err = _error(registry, _plan([FP16]))
    assert "steps[0] (half)" in str(err) and "mode 'fp16' cannot run" in str(err) and "no fp16 arithmetic" in str(err)


def test_fp16_step_must_be_last_and_whole(registry: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a CPU with fp16 arithmetic (pretended here): a torch step after it, or float islands, are refused."""
    import edgecraft.backends.executorch.fp16 as et_fp16

    monkeypatch.setattr(et_fp16, "missing_fp16", lambda features=None: None)
    compiled = _compile(registry, _plan([FP16]))
    assert compiled.steps[0].stage == "torch" and "XNNPACK fp16" in compiled.steps[0].implementation
    prune = {"strategy": "pruning", "params": {"mode": "structured", "ratio": 0.25, "epochs": 0}}
    assert "must be the last step" in str(_error(registry, _plan([FP16, prune])))
    islands = {**FP16, "params": {"mode": "fp16", "keep_float_layers": ["fc"]}}
    assert "whole module" in str(_error(registry, _plan([islands])))


def test_precision_option_is_refused_saying_what_to_write(registry: Any) -> None:
    plan = _plan([]).model_dump()
    plan["targets"] = [{"target": TARGET, "options": {"precision": "fp16"}}]
    with pytest.raises(Exception, match=r"'precision' was removed.*mode: fp16"):
        _compile(registry, RawPlan.model_validate(plan))


@pytest.mark.slow
def test_pruned_then_int8_runs_end_to_end(registry: Any) -> None:
    """Torch-stage steps feed the target without ONNX: prune, quantize, lower, measure."""
    from edgecraft.runner import run_plan

    steps = [{"strategy": "pruning", "params": {"mode": "structured", "ratio": 0.25, "epochs": 0}},
             {**INT8, "params": {"calibration_dataset": "calib", "calibration_samples": 32}}]
    raw = _plan(steps).model_dump()
    raw["latency"] = {"rounds": 2, "warmup": 2, "round_ms": 5}
    report = run_plan(RawPlan.model_validate(raw), registry, base_dir=HERE)
    (target,) = report.targets
    assert target.compressed.runtime["precision"] == "int8"
    assert target.baseline.runtime["precision"] == "fp32"
    assert target.compressed.size_bytes < target.baseline.size_bytes / 2


@pytest.mark.slow
def test_the_example_plan_passes_through_the_cli(tmp_path: Path) -> None:
    """examples/executorch/plan.yaml: digits ResNet, PT2E int8 on XNNPACK, top1 drop <= 0.5 points."""
    out = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "edgecraft.cli", "run", str(REPO / "examples/executorch/plan.yaml"),
                           "--report-json", str(out), "--cache-dir", str(tmp_path / "cache")],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    report = json.loads(out.read_text())
    (target,) = report["targets"]
    accuracy = next(c for c in target["contracts"] if c["kind"] == "accuracy")
    assert accuracy["status"] == "pass", accuracy
    assert target["compressed"]["runtime"]["precision"] == "int8"
    assert target["compressed"]["runtime"]["int8_qdq_nodes_delegated"] > 0
