"""int8 with fp16 fallback layers on ``ort-aarch64`` (the quantization step's ``float_precision: fp16``): the graph
keeps its int8 groups intact and converts only the layers left in float; refused where it cannot run; on the board
the executed graph shows int8, fp16 and fp32 compute."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from edgecraft.errors import EXIT_BAD_INPUT, EXIT_OK, InputError


def _int8_cnn(tmp_path: Path, exclude: list[str]) -> Path:
    """Three Convs and a Linear, static QDQ S8S8 per-channel by ONNX Runtime's quantizer, ``exclude`` kept float."""
    import torch
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(16, 10)).eval()
    src = tmp_path / "fp32.onnx"
    torch.onnx.export(model, (torch.zeros(1, 1, 8, 8),), str(src), input_names=["input"], output_names=["logits"],
                      dynamo=False, opset_version=17, dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}})
    rng = np.random.default_rng(0)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"input": rng.random((1, 1, 8, 8), dtype=np.float32)} for _ in range(8)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    out = tmp_path / "int8.onnx"
    quantize_static(str(src), str(out), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=exclude)
    return out


def test_only_the_float_layers_become_fp16(tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort
    from edgecraft.backends.onnxruntime.fp16 import executed_precision, to_fp16

    int8 = _int8_cnn(tmp_path, ["/2/Conv"])
    details = to_fp16(int8, tmp_path / "mixed.onnx", int8_fallback=True)
    assert details["compute_ops_converted"] == 1 and details["int8_groups_kept"] >= 3
    assert details["cast_pairs_removed"] > 0
    graph = onnx.load(str(tmp_path / "mixed.onnx")).graph
    producer = {o: n for n in graph.node for o in n.output}
    convs = {n.name: n for n in graph.node if n.op_type == "Conv"}
    for name in ("/0/Conv", "/4/Conv"):  # int8 groups: fed by DequantizeLinear directly, no Cast in between
        assert {producer[i].op_type for i in convs[name].input if i} == {"DequantizeLinear"}, name
    assert producer[convs["/2/Conv"].input[0]].op_type == "Cast"  # the island's edge
    casts = [n for n in graph.node if n.op_type == "Cast"]
    assert len(casts) == 2, [n.name for n in casts]  # into the fp16 island and out of it, nothing else
    ran = executed_precision(tmp_path / "mixed.onnx")
    assert ran["by_op"]["Conv"] == {"float16": 1, "float32": 2}  # (this file, before ORT fuses the int8 groups)
    x = np.random.default_rng(1).random((4, 1, 8, 8), dtype=np.float32)
    want = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    got = ort.InferenceSession(str(tmp_path / "mixed.onnx"), providers=["CPUExecutionProvider"]).run(None,
                                                                                                      {"input": x})[0]
    assert 0 < float(np.abs(got - want).max()) < 0.05  # fp16 rounding in one layer, not a different model


def test_fallback_needs_a_static_int8_graph(tmp_path: Path) -> None:
    from edgecraft.backends.onnxruntime.fp16 import to_fp16
    from onnxruntime.quantization import quantize_dynamic

    int8 = _int8_cnn(tmp_path, [])
    with pytest.raises(InputError, match="mode 'fp16' converts a float graph, but this one is quantized"):
        to_fp16(int8, tmp_path / "x.onnx")
    with pytest.raises(InputError, match="has no int8 op"):
        to_fp16(tmp_path / "fp32.onnx", tmp_path / "x.onnx", int8_fallback=True)
    quantize_dynamic(str(tmp_path / "fp32.onnx"), str(tmp_path / "dyn.onnx"))
    with pytest.raises(InputError, match="is dynamic int8"):
        to_fp16(tmp_path / "dyn.onnx", tmp_path / "x.onnx", int8_fallback=True)


def _plan(tmp_path: Path, params: dict, target: str = "ort-aarch64") -> Path:
    import yaml
    from test_ort_aarch64_fp16 import NET

    (tmp_path / "net.py").write_text(NET)
    plan = {
        "schema": "edgecraft.plan/v1", "name": "int8-fp16-digits",
        "model": {"kind": "torch", "factory": "net.py:build", "input_shape": [1, 1, 8, 8], "exporter": "torchscript",
                  "opset": 17},
        "data": {"train": {"kind": "digits", "split": "train", "image_size": 8, "max_samples": 128},
                 "test": {"kind": "digits", "split": "test", "image_size": 8, "max_samples": 96}},
        "evaluation": {"dataset": "test", "metrics": ["top1"], "batch_size": 96},
        "latency": {"warmup": 1, "round_ms": 1, "min_calls": 1, "max_calls": 2, "rounds": 1, "threads": 1},
        "steps": [{"strategy": "quantization", "name": "int8",
                   "params": {"calibration_dataset": "train", "calibration_samples": 64, **params}}],
        "targets": [target],
        "contracts": [{"kind": "accuracy", "metric": "top1", "max_drop": 0.03}],
    }
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


MIXED = {"mode": "static", "float_precision": "fp16", "keep_float_layers": ["/2/Conv"],
         "accuracy_aware": {"enabled": "off"}}


@pytest.mark.parametrize(("params", "target", "message"), [
    ({**MIXED, "mode": "dynamic"}, "ort-cpu", "params.float_precision 'fp16' makes the layers a static int8"),
    (MIXED, "ort-cpu", "only on ARM CPUs with fp16 arithmetic"),
])
def test_fallback_refused_at_compile_time(tmp_path: Path, capsys: pytest.CaptureFixture[str], params: dict,
                                          target: str, message: str) -> None:
    from edgecraft.cli import main

    assert main(["validate", str(_plan(tmp_path, params, target))]) == EXIT_BAD_INPUT
    err = " ".join(capsys.readouterr().err.split())
    assert "steps[0] (int8)" in err and message in err, err


@pytest.mark.slow
@pytest.mark.aarch64
def test_int8_with_fp16_fallback_runs_on_the_board(tmp_path: Path) -> None:
    """The layer kept out of int8 runs in fp16 on the board, the rest in ARM int8 kernels: the report's executed
    compute (read from the board's graph) shows both, and the contract judges the result against fp32."""
    from edgecraft.cli import main

    report = tmp_path / "report.json"
    code = main(["run", str(_plan(tmp_path, MIXED)), "--cache-dir", str(tmp_path / "cache"),
                 "--report-json", str(report)])
    (target,) = json.loads(report.read_text())["targets"]
    assert code == EXIT_OK, target["contracts"]
    runtime = target["compressed"]["runtime"]
    ran = runtime["fp16_executed"]
    assert runtime["precision"] == "int8+fp16", ran
    assert ran["by_op"]["QLinearConv"] == {"int8": 1} and ran["by_op"]["NhwcFusedConv"] == {"float16": 1}, ran
    assert ran["compute_ops_fp32"] == 0 and ran["int8_share"] > 0 and ran["fp16_share"] > 0
    step = target["compressed"]["steps"][0]
    assert step["float_fallback"]["precision"] == "fp16" and step["float_fallback"]["compute_ops_converted"] == 1
