"""fp16 on ``ort-aarch64`` as a compression step (``quantization`` with ``mode: fp16``): the float16 graph, the
compile-time decisions (accepted on the board with fp16 arithmetic, refused on x86 ort-cpu, OpenVINO, TVM and a
board without it), the removed ``precision`` option, and, on the (emulated) board, contracts that judge fp16
against the fp32 baseline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from edgecraft.errors import EXIT_BAD_INPUT, EXIT_CONTRACT_FAILED, EXIT_OK, InputError
from test_ort_aarch64 import NET as DIGITS_NET  # the trained digits CNN (build) the int8 tests use


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


#: A small CNN trained in a second on sklearn's 8x8 digits, and the same net made fragile in fp16: its Linear head
#: as a 1x1 convolution (the board computes Convs in fp16; its Gemm runs in fp32 behind Casts, and the board's
#: optimizer drops the fp32->fp16->fp32 Cast pair after it) with every logit shifted by 30000. Softmax and argmax
#: do not change in fp32; fp16's spacing at 30000 is 16, far above the margins between classes, so half precision
#: ties the logits and the top-1 collapses.
NET = DIGITS_NET + '''

def fragile():
    model = build()
    head = nn.Conv2d(32, 10, 1)
    with torch.no_grad():
        head.weight.copy_(model[-1].weight[:, :, None, None])
        head.bias.copy_(model[-1].bias + 30000.0)
    return nn.Sequential(*model[:-2], head, nn.Flatten()).eval()
'''

FP16 = [{"strategy": "quantization", "name": "half", "params": {"mode": "fp16"}}]


def _plan(tmp_path: Path, *, steps: list[dict] = FP16, contracts: list[dict] | None = None, factory: str = "build",
          target: object = "ort-aarch64") -> Path:
    (tmp_path / "net.py").write_text(NET)
    plan = {
        "schema": "edgecraft.plan/v1", "name": "fp16-digits",
        "model": {"kind": "torch", "factory": f"net.py:{factory}", "input_shape": [1, 1, 8, 8],
                  "exporter": "torchscript", "opset": 17},
        "data": {"test": {"kind": "digits", "split": "test", "image_size": 8, "max_samples": 96}},
        "evaluation": {"dataset": "test", "metrics": ["top1"], "batch_size": 96},
        "latency": {"warmup": 1, "round_ms": 1, "min_calls": 1, "max_calls": 2, "rounds": 1, "threads": 1},
        "steps": steps,
        "targets": [target],
        "contracts": contracts if contracts is not None else [{"kind": "accuracy", "metric": "top1",
                                                               "max_drop": 0.03}],
    }
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def _validate(plan: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from edgecraft.cli import main

    code = main(["validate", str(plan)])
    return code, " ".join(capsys.readouterr().err.split())


# ---------------------------------------------------------------- the float16 graph
def test_fp16_graph_keeps_float32_io_and_counts_fp16_compute(tmp_path: Path) -> None:
    import onnx
    from edgecraft.backends.onnxruntime.fp16 import executed_precision, holds_fp16, precision_label, to_fp16

    src = _cnn_onnx(tmp_path / "fp32.onnx")
    details = to_fp16(src, tmp_path / "fp16.onnx")
    assert details == {"kept_float32": [], "compute_ops_converted": 3, "cast_pairs_removed": 0}
    graph = onnx.load(str(tmp_path / "fp16.onnx")).graph
    assert [i.type.tensor_type.elem_type for i in [*graph.input, *graph.output]] == [1, 1]  # float32 at the edges
    half = executed_precision(tmp_path / "fp16.onnx")
    assert half["compute_ops_fp16"] == 3 and half["compute_ops_fp32"] == 0 and half["fp16_share"] == 1.0
    assert precision_label(half) == "fp16" and holds_fp16(tmp_path / "fp16.onnx")
    full = executed_precision(src)
    assert full["fp16_share"] == 0.0 and full["by_op"]["Conv"] == {"float32": 2}
    assert precision_label(full) == "fp32" and not holds_fp16(src)


def test_keep_float_layers_stay_float32(tmp_path: Path) -> None:
    from edgecraft.backends.onnxruntime.fp16 import executed_precision, to_fp16

    src = _cnn_onnx(tmp_path / "fp32.onnx")
    details = to_fp16(src, tmp_path / "fp16.onnx", keep_layers=("/6/*",))  # the Linear (Gemm) of the Sequential
    assert details["kept_float32"] == ["/6/Gemm"] and details["compute_ops_converted"] == 2
    ran = executed_precision(tmp_path / "fp16.onnx")
    assert ran["by_op"]["Gemm"] == {"float32": 1} and ran["by_op"]["Conv"] == {"float16": 2}
    with pytest.raises(InputError, match=r"keep_float_layers pattern '/head/\*' matches no node"):
        to_fp16(src, tmp_path / "x.onnx", keep_layers=("/head/*",))


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
    with pytest.raises(InputError, match=r"mode 'fp16'.*quantized"):
        to_fp16(tmp_path / "q.onnx", tmp_path / "out.onnx")


def test_board_without_fp16_arithmetic_is_refused_at_run_time() -> None:
    """``device: local`` is checked where the session opens: a board CPU without FEAT_FP16 is refused by name."""
    from edgecraft.backends.onnxruntime.fp16 import check_board_fp16

    with pytest.raises(InputError, match=r"artifact is fp16.*no fp16 arithmetic.*asimd, asimddp") as info:
        check_board_fp16("ort-aarch64", {"asimd": True, "asimddp": True, "asimdhp": False, "fphp": False})
    assert "mode 'fp16'" in str(info.value.hint)
    check_board_fp16("ort-aarch64", {"asimdhp": True})  # the Cortex-A76 board: accepted


# ---------------------------------------------------------------- the removed option, and where fp16 is refused
def test_precision_option_is_refused_saying_what_to_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edgecraft.backends.onnxruntime.aarch64 import OrtAarch64Options
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="target option 'precision' was removed"):
        OrtAarch64Options.model_validate({"precision": "fp16"})
    plan = _plan(tmp_path, steps=[], target={"target": "ort-aarch64", "options": {"precision": "fp16"}})
    code, err = _validate(plan, capsys)
    assert code == EXIT_BAD_INPUT
    assert "targets[0]" in err and "'precision' was removed" in err
    assert "{strategy: quantization, params: {mode: fp16}}" in err


@pytest.mark.parametrize(("target", "reason"), [
    ("ort-cpu", "only on ARM CPUs with fp16 arithmetic"),
    pytest.param({"target": "openvino-cpu", "options": {"inference_precision": "f32"}}, "runtimePrecision says bf16",
                 marks=pytest.mark.openvino),
    pytest.param("tvm-aarch64", "compile the imported Relax module as it is, in float32",
                 marks=[pytest.mark.tvm, pytest.mark.aarch64]),
])
def test_fp16_refused_at_compile_time_where_the_runtime_does_not_compute_in_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], target: object, reason: str) -> None:
    label = target if isinstance(target, str) else target["target"]  # type: ignore[index]
    code, err = _validate(_plan(tmp_path, target=target), capsys)
    assert code == EXIT_BAD_INPUT, err
    assert "steps[0]" in err and label in err and reason in err, err


def test_int8_params_with_fp16_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    steps = [{"strategy": "quantization", "params": {"mode": "fp16", "activation_type": "int8"}}]
    code, err = _validate(_plan(tmp_path, steps=steps, target="ort-cpu"), capsys)
    assert code == EXIT_BAD_INPUT and "params.activation_type = 'int8' applies to int8" in err
    steps = [{"strategy": "quantization", "params": {"mode": "fp16"}}, {"strategy": "quantization"}]
    code, err = _validate(_plan(tmp_path, steps=steps, target="ort-cpu"), capsys)
    assert code == EXIT_BAD_INPUT and "steps[1] would quantize the fp16 model again" in err


@pytest.mark.aarch64
def test_compile_reads_the_boards_fp16_arithmetic(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Accepted on the emulated Cortex-A76 (FEAT_FP16, read on the board); refused on a board without it."""
    import edgecraft.boards

    plan = _plan(tmp_path)
    assert _validate(plan, capsys)[0] == EXIT_OK
    monkeypatch.setattr(edgecraft.boards, "board_cpu_features", lambda device: {"asimd": True, "asimdhp": False})
    code, err = _validate(plan, capsys)
    assert code == EXIT_BAD_INPUT and "steps[0]" in err and "no fp16 arithmetic" in err


# ---------------------------------------------------------------- on the board
@pytest.mark.slow
@pytest.mark.aarch64
def test_fp16_step_is_judged_against_the_fp32_baseline(tmp_path: Path) -> None:
    """The baseline is fp32 and the candidate fp16, both run on the board: a net that keeps its accuracy in fp16
    passes the contract; one built to lose it in fp16 fails it. What ran in fp16 is the board's executed graph's."""
    from edgecraft.cli import main

    results = {}
    for factory in ("build", "fragile"):
        folder = tmp_path / factory
        folder.mkdir()
        report = folder / "report.json"
        code = main(["run", str(_plan(folder, factory=factory)), "--cache-dir", str(tmp_path / "cache"),
                     "--report-json", str(report)])
        (target,) = json.loads(report.read_text())["targets"]
        results[factory] = code, target
    code, target = results["build"]
    assert code == EXIT_OK, target["contracts"]
    base, half = target["baseline"], target["compressed"]
    assert "fp16_executed" not in base["runtime"] and "precision" not in base["runtime"]  # the baseline is fp32
    ran = half["runtime"]["fp16_executed"]
    assert ran["by_op"]["NhwcFusedConv"] == {"float16": 2} and ran["by_op"]["Gemm"] == {"float32": 1}, ran
    assert half["runtime"]["precision"] == "fp16+fp32"  # Gemm has no fp16 kernel in ORT 1.27 on ARM: said so
    assert half["steps"][0]["mode"] == "fp16" and base["metrics"]["top1"] > 0.85
    code, target = results["fragile"]
    assert code == EXIT_CONTRACT_FAILED
    (verdict,) = target["contracts"]
    assert verdict["status"] == "fail"
    assert target["baseline"]["metrics"]["top1"] > 0.85  # fp32: the shifted logits change nothing
    assert target["compressed"]["metrics"]["top1"] < target["baseline"]["metrics"]["top1"] - 0.1
    assert target["compressed"]["runtime"]["fp16_executed"]["by_op"] == {"NhwcFusedConv": {"float16": 3}}


@pytest.mark.slow
@pytest.mark.aarch64
def test_fp16_benchmark_smoke(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = tmp_path / "fp16.json"
    subprocess.run([sys.executable, str(Path(__file__).resolve().parents[3] / "benchmarks" / "ort_arm_fp16.py"),
                    "--smoke", "--json", str(out)], check=True, capture_output=True, timeout=900)
    figures = json.loads(out.read_text())
    assert figures["ort_arm_fp16_compute_ops"] == {"float16": 2, "float32": 1}
    assert "ort_arm_fp16_top1_drop_pt" in figures and figures["baseline_precision"] == "fp32"
    assert figures["ort_arm_int8_fp16_compute_ops"] == {"int8": 2, "float16": 1, "float32": 0}
    assert figures["ort_arm_int8_fp16_precision"] == "int8+fp16"
    assert figures["board"]["cpu_features"]["asimdhp"] is True
    assert "int8" in figures["host_cpu"]
    assert 0.9 < figures["ort_arm_fp16_cosine"] <= 1.0 + 1e-6  # fp16 logits close to the fp32 ones
