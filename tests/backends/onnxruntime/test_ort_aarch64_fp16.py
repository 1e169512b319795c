"""``ort-aarch64`` with ``precision: fp16``: the float16 artifact, the compile-time refusal, and the executed
graph's fp16 share read on the (emulated) board."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from edgecraft.errors import InputError


def _cnn_onnx(path: Path) -> Path:
    """Two convolutions and a Linear (Conv, Conv, Gemm): the digits test net's shape, untrained."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)).eval()
    torch.onnx.export(model, (torch.zeros(1, 1, 8, 8),), str(path), input_names=["input"], output_names=["logits"],
                      dynamo=False, opset_version=17, dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}})
    return path


def test_fp16_artifact_keeps_float32_io_and_counts_fp16_compute(tmp_path: Path) -> None:
    import onnx
    from edgecraft.backends.onnxruntime.fp16 import executed_precision, to_fp16

    src = _cnn_onnx(tmp_path / "fp32.onnx")
    to_fp16(src, tmp_path / "fp16.onnx")
    graph = onnx.load(str(tmp_path / "fp16.onnx")).graph
    assert [i.type.tensor_type.elem_type for i in [*graph.input, *graph.output]] == [1, 1]  # float32 at the edges
    half = executed_precision(tmp_path / "fp16.onnx")
    assert half["compute_ops_fp16"] == 3 and half["compute_ops_fp32"] == 0 and half["fp16_share"] == 1.0
    full = executed_precision(src)
    assert full["fp16_share"] == 0.0 and full["by_op"]["Conv"] == {"float32": 2}


def test_fp16_of_an_int8_graph_is_refused(tmp_path: Path) -> None:
    import onnx
    from edgecraft.backends.onnxruntime.fp16 import to_fp16
    from onnx import TensorProto, helper

    q = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"])
    d = helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])
    graph = helper.make_graph([q, d], "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
                              [helper.make_tensor("s", TensorProto.FLOAT, [], [0.1]),
                               helper.make_tensor("z", TensorProto.INT8, [], [0])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "q.onnx"))
    with pytest.raises(InputError, match=r"precision 'fp16'.*quantized"):
        to_fp16(tmp_path / "q.onnx", tmp_path / "out.onnx")


def test_board_without_fp16_arithmetic_is_refused() -> None:
    from edgecraft.backends.onnxruntime.fp16 import check_board_fp16

    with pytest.raises(InputError, match=r"precision 'fp16'.*no fp16 arithmetic.*asimd, asimddp") as info:
        check_board_fp16("ort-aarch64", {"asimd": True, "asimddp": True, "asimdhp": False, "fphp": False})
    assert "precision 'fp32'" in str(info.value.hint)
    check_board_fp16("ort-aarch64", {"asimdhp": True})  # the Cortex-A76 board: accepted


def test_precision_option_is_validated() -> None:
    from edgecraft.backends.onnxruntime.aarch64 import OrtAarch64Options
    from pydantic import ValidationError

    assert OrtAarch64Options().precision == "fp32"
    with pytest.raises(ValidationError, match="precision"):
        OrtAarch64Options.model_validate({"precision": "bf16"})


@pytest.mark.aarch64
def test_compile_time_refusal_reads_the_boards_features(monkeypatch: pytest.MonkeyPatch) -> None:
    """check_available (compile time) reads the board's features; a board without FEAT_FP16 is refused."""
    import edgecraft.boards
    from edgecraft.backends.onnxruntime.aarch64 import OrtAarch64Options
    from edgecraft.backends.onnxruntime.backend import OnnxRuntimeBackend

    backend, options = OnnxRuntimeBackend(), OrtAarch64Options(precision="fp16")
    features = edgecraft.boards.board_cpu_features(edgecraft.boards.EmulatedDevice.at())
    assert features["asimdhp"] and features["fphp"]  # the emulated Cortex-A76 has fp16 arithmetic
    backend.check_available("ort-aarch64", options)
    monkeypatch.setattr(edgecraft.boards, "board_cpu_features", lambda device: {"asimd": True, "asimdhp": False})
    with pytest.raises(InputError, match="no fp16 arithmetic"):
        backend.check_available("ort-aarch64", options)


@pytest.mark.slow
@pytest.mark.aarch64
def test_fp16_runs_on_the_board_and_reports_what_ran(tmp_path: Path) -> None:
    """The fp16 artifact on the board: Convs executed in fp16 (NhwcFusedConv), Gemm falls back to fp32 behind a
    Cast (ORT 1.27's CPU EP has no fp16 Gemm), outputs within fp16 rounding of the fp32 ones on the board."""
    from edgecraft.backends.onnxruntime.aarch64 import OrtAarch64Options
    from edgecraft.backends.onnxruntime.backend import OnnxRuntimeBackend

    src = _cnn_onnx(tmp_path / "src.onnx")
    backend = OnnxRuntimeBackend()
    x = np.random.default_rng(0).random((4, 1, 8, 8), dtype=np.float32)
    outs, facts = {}, {}
    for precision in ("fp32", "fp16"):
        options = OrtAarch64Options(precision=precision)
        backend.check_available("ort-aarch64", options)
        (tmp_path / precision).mkdir()
        backend.save(src, "ort-aarch64", options, tmp_path / precision)
        session = backend.load(tmp_path / precision, "ort-aarch64", options, 1)
        try:
            outs[precision] = session.run({"input": x})[0]
            facts[precision] = session.describe()
        finally:
            session.close()
    assert outs["fp16"].dtype == np.float32
    assert "fp16_executed" not in facts["fp32"]
    ran = facts["fp16"]["fp16_executed"]
    assert facts["fp16"]["precision"] == "fp16"
    assert ran["by_op"]["NhwcFusedConv"] == {"float16": 2}, ran
    assert ran["by_op"]["Gemm"] == {"float32": 1}, ran
    assert ran["fp16_share"] == pytest.approx(2 / 3, abs=1e-3)
    diff = float(np.max(np.abs(outs["fp16"] - outs["fp32"])))
    assert 0 < diff < 0.05, diff  # fp16 rounding, not identical (it did not run fp32) and not garbage


@pytest.mark.slow
@pytest.mark.aarch64
def test_fp16_benchmark_smoke(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    out = tmp_path / "fp16.json"
    subprocess.run([sys.executable, str(Path(__file__).resolve().parents[3] / "benchmarks" / "ort_arm_fp16.py"),
                    "--smoke", "--json", str(out)], check=True, capture_output=True, timeout=600)
    figures = json.loads(out.read_text())
    assert figures["ort_arm_fp16_compute_ops"] == {"float16": 2, "float32": 1}
    assert figures["board"]["cpu_features"]["asimdhp"] is True
    assert "int8" in figures["host_cpu"]
