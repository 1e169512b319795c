"""Models as users bring them: several inputs, int64 ids, a 0-d scalar, state whose batch axis is second,
symbolic dimensions, several outputs. Built here with onnx.helper, run through the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from edgecraft.cli import main
from edgecraft.errors import InputError
from edgecraft.modelio import ModelIO, TensorSpec, apply_overrides, io_from_onnx
from edgecraft.plan import InputDecl

FAST_LATENCY = {"warmup": 2, "repeats": 10, "rounds": 2, "threads": 1}
N = 48


def multi_input_model(path: Path, *, seq: int | str = 8, state_batch: str = "batch", opset: int = 17) -> Path:
    """ids:int64[batch, seq], x:float[batch, 4], state:float[2, batch, 4], sr:int64[] -> logits[batch, 3], stateN."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((50, 4)).astype(np.float32), "E"),
        numpy_helper.from_array(rng.standard_normal((4, 3)).astype(np.float32), "W"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "axis0"),
        numpy_helper.from_array(np.array(16000.0, dtype=np.float32), "sr_scale"),
        numpy_helper.from_array(np.array(0.5, dtype=np.float32), "half"),
    ]
    nodes = [
        helper.make_node("Gather", ["E", "ids"], ["emb"], axis=0),
        helper.make_node("ReduceMean", ["emb"], ["pooled"], axes=[1], keepdims=0),
        (helper.make_node("ReduceSum", ["state", "axis0"], ["summed"], keepdims=0) if opset >= 13 else
         helper.make_node("ReduceSum", ["state"], ["summed"], axes=[0], keepdims=0)),
        helper.make_node("Cast", ["sr"], ["sr_f"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["sr_f", "sr_scale"], ["sr_n"]),
        helper.make_node("Mul", ["summed", "sr_n"], ["scaled"]),
        helper.make_node("Add", ["pooled", "x"], ["h0"]),
        helper.make_node("Add", ["h0", "scaled"], ["h"]),
        helper.make_node("MatMul", ["h", "W"], ["logits"]),
        helper.make_node("Mul", ["state", "half"], ["stateN"]),
    ]
    graph = helper.make_graph(
        nodes, "multi",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", seq]),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4]),
         helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, state_batch, 4]),
         helper.make_tensor_value_info("sr", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3]),
         helper.make_tensor_value_info("stateN", TensorProto.FLOAT, [2, "batch", 4])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def feeds_npz(path: Path, *, drop: str | None = None, ids_dtype: Any = np.int64, seq: int = 8) -> Path:
    rng = np.random.default_rng(1)
    arrays = {"ids": rng.integers(0, 50, (N, seq)).astype(ids_dtype), "x": rng.standard_normal((N, 4)).astype(
        np.float32), "state": rng.standard_normal((N, 2, 4)).astype(np.float32),
              "sr": np.full((N,), 16000, np.int64), "y": rng.integers(0, 3, N)}
    if drop:
        arrays.pop(drop)
    np.savez(path, **arrays)
    return path


def plan(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "multi", "model": {"kind": "onnx", "path": "m.onnx"},
        "data": {"eval": {"kind": "npz", "path": "d.npz"}},
        "evaluation": {"dataset": "eval", "metrics": ["agreement", "cosine"]},
        "latency": FAST_LATENCY, "targets": ["ort-cpu"],
        "contracts": [{"kind": "accuracy", "metric": "agreement", "max_drop": 0.0}],
    }
    base.update(overrides)
    return base


def run(tmp: Path, plan_data: dict[str, Any], *extra: str) -> tuple[int, dict[str, Any] | None]:
    (tmp / "plan.yaml").write_text(yaml.safe_dump(plan_data))
    report = tmp / "report.json"
    report.unlink(missing_ok=True)
    code = main(["run", str(tmp / "plan.yaml"), "--report-json", str(report), "--cache-dir", str(tmp / "cache"),
                 "-q", *extra])
    return code, json.loads(report.read_text()) if report.exists() else None


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    multi_input_model(tmp_path / "m.onnx")
    feeds_npz(tmp_path / "d.npz")
    return tmp_path


# ---------------------------------------------------------------- reading and completing the I/O
def test_io_read_from_onnx_keeps_names_dtypes_and_batch_axes(tmp: Path) -> None:
    import onnx

    io = io_from_onnx(onnx.load(str(tmp / "m.onnx")))
    assert [(t.name, t.dtype) for t in io.inputs] == [("ids", "int64"), ("x", "float32"), ("state", "float32"),
                                                      ("sr", "int64")]
    assert [t.batch_axis for t in io.inputs] == [0, 0, 1, None]  # state's batch axis is its second
    assert io.input("sr").shape == () and io.output_names == ["logits", "stateN"]
    assert io.outputs[1].batch_axis == 1


def test_symbolic_dims_fixed_from_the_plan(tmp_path: Path) -> None:
    import onnx

    io = io_from_onnx(onnx.load(str(multi_input_model(tmp_path / "m.onnx", seq="sequence"))))
    assert io.input("ids").free_dims() == [(1, "sequence")]
    fixed = apply_overrides(io, {"ids": InputDecl(shape=["batch", 16])})
    assert fixed.input("ids").shape == ("batch", 16) and fixed.input("ids").batch_axis == 0
    fixed.check_concrete()
    with pytest.raises(InputError, match=r"ids.*shape\[0\]|rank"):
        apply_overrides(io, {"ids": InputDecl(shape=[16])})
    with pytest.raises(InputError, match=r"'nope'.*not an input"):
        apply_overrides(io, {"nope": InputDecl(shape=[1])})


def test_unnamed_state_batch_axis_is_declared(tmp_path: Path) -> None:
    import onnx

    io = io_from_onnx(onnx.load(str(multi_input_model(tmp_path / "m.onnx", state_batch="?"))))
    with pytest.raises(Exception, match=r"'state' has symbolic dimension 1"):
        io.check_concrete()
    fixed = apply_overrides(io, {"state": InputDecl(batch_axis=1)})
    fixed.check_concrete()
    assert fixed.input("state").batch_axis == 1


def test_feeds_move_samples_to_each_batch_axis() -> None:
    from edgecraft.datasets import make_dataset

    io = ModelIO((TensorSpec("x", "float32", ("batch", 4), 0), TensorSpec("state", "float32", (2, "batch", 4), 1),
                  TensorSpec("sr", "int64", (), None)))
    data = make_dataset("d", {"x": np.zeros((5, 4)), "state": np.arange(40, dtype=np.float32).reshape(5, 2, 4),
                              "sr": np.full(5, 8000)}, None)
    bound = data.bind(io)
    assert bound.max_batch == 1  # a 0-d input takes one sample per call
    feeds = bound.feeds(slice(2, 3))
    assert feeds["state"].shape == (2, 1, 4) and feeds["sr"].shape == () and feeds["sr"].dtype == np.int64
    assert np.array_equal(feeds["state"][:, 0], data.arrays["state"][2])


# ---------------------------------------------------------------- end to end
def test_multi_input_model_runs_end_to_end(tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run(tmp, plan(steps=[{"strategy": "quantization", "params": {"mode": "dynamic"}}]))
    assert code in (0, 1), capsys.readouterr().err
    assert report is not None
    target = report["targets"][0]
    assert target["baseline"]["metrics"]["agreement"] == 1.0
    assert 0.0 <= target["compressed"]["metrics"]["cosine"] <= 1.0 + 1e-9


def test_evaluation_output_selects_a_second_output(tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run(tmp, plan(evaluation={"dataset": "eval", "metrics": ["cosine"], "output": "stateN"},
                                 contracts=[{"kind": "accuracy", "metric": "cosine", "max_drop": 0.0}]))
    assert code == 0, capsys.readouterr().err
    assert report is not None and report["targets"][0]["compressed"]["metrics"]["cosine"] == pytest.approx(1.0)


@pytest.mark.openvino
def test_multi_input_model_on_openvino(tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run(tmp, plan(targets=[{"target": "openvino-cpu", "options": {"inference_precision": "f32"}}]))
    assert code == 0, capsys.readouterr().err
    assert report is not None and report["targets"][0]["compressed"]["metrics"]["agreement"] == 1.0


# ---------------------------------------------------------------- bad input: exit 2 naming the field
@pytest.mark.parametrize("change, fragment", [
    (lambda t: feeds_npz(t / "d.npz", drop="sr"), "feeds no data to model input(s) ['sr']"),
    (lambda t: feeds_npz(t / "d.npz", ids_dtype=np.float32), "array 'ids' (feeds input 'ids'): dtype float32"),
    (lambda t: feeds_npz(t / "d.npz", seq=5), "samples have shape [5] but the input takes [8]"),
    (lambda t: multi_input_model(t / "m.onnx", seq="sequence"), "input 'ids' has symbolic dimension 1 ('sequence')"),
])
def test_bad_feeds_are_exit_2_naming_the_input(tmp: Path, change: Any, fragment: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    change(tmp)
    code, _ = run(tmp, plan())
    err = capsys.readouterr().err
    assert code == 2, err
    assert fragment in err and "Traceback" not in err


def test_unknown_output_name_is_exit_2(tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run(tmp, plan(evaluation={"dataset": "eval", "metrics": ["cosine"], "output": "probs"}))
    err = capsys.readouterr().err
    assert code == 2 and "evaluation.output = 'probs'" in err and "'logits', 'stateN'" in err


def test_plan_fixes_a_symbolic_dimension(tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    multi_input_model(tmp / "m.onnx", seq="sequence")
    code, _ = run(tmp, plan(model={"kind": "onnx", "path": "m.onnx", "inputs": {"ids": {"shape": ["batch", 8]}}}))
    assert code == 0, capsys.readouterr().err


def test_input_mapping_renames_arrays(tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with np.load(tmp / "d.npz") as archive:
        arrays = {("token_ids" if k == "ids" else k): archive[k] for k in archive.files}
    np.savez(tmp / "d.npz", **arrays)
    code, _ = run(tmp, plan(data={"eval": {"kind": "npz", "path": "d.npz", "inputs": {
        "ids": "token_ids", "x": "x", "state": "state", "sr": "sr"}}}))
    assert code == 0, capsys.readouterr().err


def test_nan_in_data_is_exit_2_naming_the_dataset(tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with np.load(tmp / "d.npz") as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["x"][3, 1] = np.nan
    np.savez(tmp / "d.npz", **arrays)
    code, _ = run(tmp, plan())
    err = capsys.readouterr().err
    assert code == 2 and "dataset 'eval', array 'x': 1 sample(s) hold NaN or Inf" in err


def test_old_opset_model_quantizes_per_channel_after_upgrade(tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    multi_input_model(tmp / "m.onnx", opset=12)
    code, report = run(tmp, plan(steps=[{"strategy": "quantization", "params": {
        "mode": "static", "calibration_dataset": "eval", "calibration_samples": 8}}], contracts=[]),
        "--allow-no-contracts")
    assert code == 0, capsys.readouterr().err
    assert report is not None
    details = report["targets"][0]["compressed"]["steps"][0]
    assert "opset upgraded 12 -> 13" in details["opset"] and details["per_channel"] is True
