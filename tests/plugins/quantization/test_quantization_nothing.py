"""A quantization that quantized nothing says so (issue 26, item 3): exit 2 naming the step, the target and why."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from edgecraft.cli import main


def no_weights_model(path: Path) -> Path:
    """Relu and Add of a constant: nothing a quantizer can make int8."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    bias = numpy_helper.from_array(np.full((1, 16), 0.5, np.float32), "bias")
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Add", ["r", "bias"], ["y"])],
                              "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 16])], [bias])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def matmul_in_if_model(path: Path) -> Path:
    """Its one MatMul sits inside an If branch (as Silero VAD's convolutions and LSTM do)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((16, 16)).astype(np.float32), "w")

    def branch(name: str, op: str) -> Any:
        node = helper.make_node(op, ["x", "w"] if op == "MatMul" else ["x"], [f"{name}_out"])
        return helper.make_graph([node], name, [], [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT,
                                                                                   ["batch", 16])])

    nodes = [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
             helper.make_node("Greater", ["s", "zero"], ["cond"]),
             helper.make_node("If", ["cond"], ["y"], then_branch=branch("then", "MatMul"),
                              else_branch=branch("else", "Relu"))]
    zero = numpy_helper.from_array(np.array(-1e9, np.float32), "zero")
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])], [w, zero])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def run(tmp: Path, model: Path, target: str, shape: list[Any]) -> tuple[int, str]:
    np.savez(tmp / "calib.npz", x=np.random.default_rng(1).standard_normal((8, *shape[1:])).astype(np.float32))
    plan = {"name": "nothing", "model": {"kind": "onnx", "path": model.name, "inputs": {"x": {"shape": shape}}},
            "data": {"calib": {"kind": "npz", "path": "calib.npz", "labels": None}},
            "steps": [{"strategy": "quantization", "params": {"mode": "static", "calibration_dataset": "calib",
                                                              "calibration_samples": 8}}],
            "targets": [target], "latency": {"warmup": 1, "repeats": 5, "rounds": 1, "threads": 1},
            "contracts": [{"kind": "size", "min_ratio": 0.1}]}
    (tmp / "plan.yaml").write_text(yaml.safe_dump(plan))
    return main(["run", str(tmp / "plan.yaml"), "--cache-dir", str(tmp / "cache"), "-q",
                 "--report-json", str(tmp / "r.json")]), ""


@pytest.mark.parametrize("target", ["ort-cpu", pytest.param("openvino-cpu", marks=pytest.mark.openvino)])
def test_a_model_without_quantizable_ops_is_exit_2_naming_step_target_and_why(
        tmp_path: Path, target: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run(tmp_path, no_weights_model(tmp_path / "m.onnx"), target, ["batch", 16])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "steps[0]" in err and repr(target) in err and "the quantization step changed nothing" in err
    assert "no quantizable op" in err
    assert not (tmp_path / "r.json").exists()  # no target measured: no verdict, no report


def test_ops_inside_if_subgraphs_are_named_as_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run(tmp_path, matmul_in_if_model(tmp_path / "m.onnx"), "ort-cpu", [1, 16])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "no weight layer with int8 weights" in err and "inside If subgraphs" in err and "does not enter" in err


def test_a_quantization_that_makes_the_model_bigger_is_an_error() -> None:
    from edgecraft.errors import InputError
    from edgecraft.plugins.quantization.strategy import check_changed
    from edgecraft.quantize import Int8Evidence

    with pytest.raises(InputError, match="made the model bigger"):
        check_changed(Int8Evidence(1, "int8 weight tensors", 2 << 20, 3 << 20), {},
                      "steps[0] (quantization) on target 'x'")
    details: dict[str, Any] = {}  # a model of a few KB grows from its Q/DQ nodes alone: a note, not an error
    check_changed(Int8Evidence(1, "int8 weight tensors", 1000, 1400), details, "here")
    assert "1,000 -> 1,400 bytes" in details["size_note"]
    with pytest.raises(InputError, match="every quantized layer was returned to float"):
        check_changed(Int8Evidence(0, "int8 weight tensors", 1000, 1000), {"kept_float": ["a", "b"],
                                                                           "accuracy_aware": {"contract_met": False}},
                      "steps[0] (quantization) on target 'x'")
    check_changed(Int8Evidence(3, "int8 weight tensors", 1000, 300), {}, "here")  # int8 and smaller: fine
    check_changed(None, {}, "here")  # the backend cannot tell: no check


def test_report_is_untouched_by_a_passing_check(tmp_path: Path) -> None:
    """The ordinary case still passes: a MatMul model quantizes, the step details carry its int8 weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 64])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "m.onnx"))
    code, _ = run(tmp_path, tmp_path / "m.onnx", "ort-cpu", ["batch", 64])
    assert code == 0
    step = json.loads((tmp_path / "r.json").read_text())["targets"][0]["compressed"]["steps"][0]
    assert step["int8_weight_tensors"] >= 1
