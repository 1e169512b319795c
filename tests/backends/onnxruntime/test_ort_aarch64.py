"""``ort-aarch64``: ONNX Runtime's aarch64 build on the emulated board (QEMU), driven through the CLI.

The board tests are marked ``aarch64`` (the board is prepared by ``edgecraft device setup arm64-emulated``,
which ./scripts/test runs) and the ones that build and run models ``slow``.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from edgecraft.errors import EXIT_BAD_INPUT, EXIT_OK, InputError

REPO = Path(__file__).resolve().parents[3]

#: A small CNN trained in a second on sklearn's 8x8 digits, so int8's accuracy contract means something.
NET = '''
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn


def untrained():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1, stride=2),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10)).eval()


def build():
    model = untrained().train()
    bunch = load_digits()
    idx = np.arange(len(bunch.target))
    train, _ = train_test_split(idx, test_size=0.2, random_state=0, stratify=bunch.target)  # the plugin's split
    x = torch.from_numpy(bunch.images[train].astype(np.float32) / 16.0)[:, None]
    y = torch.from_numpy(bunch.target[train].astype(np.int64))
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()
'''


def _plan(tmp_path: Path, steps: list[dict], contracts: list[dict], factory: str = "build") -> Path:
    (tmp_path / "net.py").write_text(NET)
    plan = {
        "schema": "edgecraft.plan/v1", "name": "ort-aarch64-digits",
        "model": {"kind": "torch", "factory": f"net.py:{factory}", "input_shape": [1, 1, 8, 8],
                  "exporter": "torchscript", "opset": 17},
        "data": {"train": {"kind": "digits", "split": "train", "image_size": 8, "max_samples": 256},
                 "test": {"kind": "digits", "split": "test", "image_size": 8, "max_samples": 96}},
        "evaluation": {"dataset": "test", "metrics": ["top1", "agreement"], "batch_size": 96},
        "latency": {"warmup": 1, "round_ms": 1, "min_calls": 1, "max_calls": 2, "rounds": 1, "threads": 1},
        "steps": steps,
        "targets": ["ort-aarch64"],
        "contracts": contracts,
    }
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


INT8 = [{"strategy": "quantization", "params": {"mode": "static", "calibration_dataset": "train",
                                                "calibration_samples": 64}}]


# ---------------------------------------------------------------- no board needed
def test_wire_round_trip() -> None:
    from edgecraft.backends.onnxruntime import board_server as wire

    stream = io.BytesIO()
    arrays = [np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2], dtype=np.int64)]
    wire.send(stream, {"op": "run"}, arrays)
    stream.seek(0)
    message = wire.receive(stream)
    assert message is not None
    header, got = message
    assert header == {"op": "run", "arrays": 2}
    for a, b in zip(arrays, got, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert wire.receive(stream) is None  # end of stream


def test_hwcaps_decoded() -> None:
    from edgecraft.boards import decode_hwcaps

    features = decode_hwcaps((1 << 20) | (1 << 10), (1 << 13) | (1 << 23))
    assert features["asimddp"] and features["asimdhp"] and features["i8mm"] and features["sme"]
    assert not features["fphp"] and not features["sve"] and not features["bf16"]


def test_target_is_emulated_and_needs_the_board(tmp_path: Path) -> None:
    from edgecraft.backends.onnxruntime.aarch64 import OrtAarch64Options
    from edgecraft.backends.onnxruntime.backend import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend()
    options = OrtAarch64Options(device_cache_dir=tmp_path)
    assert backend.is_emulated("ort-aarch64", options)
    assert not backend.measures_memory_locally("ort-aarch64", options)
    with pytest.raises(InputError) as info:
        backend.check_available("ort-aarch64", options)
    assert "edgecraft device setup arm64-emulated" in str(info.value.hint)
    assert backend.board_packages("arm64-emulated") == {"onnxruntime": ["onnxruntime==1.27.0", "numpy==2.4.6"]}


def test_saved_optimization_is_portable_only() -> None:
    from edgecraft.backends.onnxruntime.aarch64 import OrtAarch64Options
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="saved_optimization"):
        OrtAarch64Options.model_validate({"saved_optimization": "extended"})


# ---------------------------------------------------------------- the board
@pytest.mark.aarch64
def test_device_setup_installs_onnxruntime_on_the_board(capsys: pytest.CaptureFixture[str]) -> None:
    """`edgecraft device setup arm64-emulated` installs every backend's board packages; again, it is a no-op."""
    from edgecraft.boards import EmulatedDevice, board_packages
    from edgecraft.cli import main

    assert main(["device", "setup", "arm64-emulated"]) == EXIT_OK
    device = EmulatedDevice.at()
    assert board_packages(device, "onnxruntime") == "/opt/edgecraft/packages/onnxruntime"
    assert (device.rootfs / "opt/edgecraft/packages/onnxruntime/onnxruntime").is_dir()
    capsys.readouterr()
    start = time.monotonic()
    assert main(["device", "setup", "arm64-emulated"]) == EXIT_OK
    assert "downloading" not in capsys.readouterr().out  # offline and idempotent
    assert time.monotonic() - start < 30


@pytest.mark.aarch64
def test_dynamic_conv_refused_at_compile_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """ConvInteger has no ARM kernel in ONNX Runtime: refused before anything is built, with the reason."""
    from edgecraft.cli import main

    steps = [{"strategy": "quantization", "params": {"mode": "dynamic"}}]
    plan = _plan(tmp_path, steps, [{"kind": "accuracy", "metric": "top1", "max_drop": 0.02}], "untrained")
    assert main(["validate", str(plan)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "ConvInteger" in err and "no ARM kernel" in err


@pytest.mark.aarch64
def test_emulated_latency_contract_needs_opt_in(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edgecraft.cli import main

    plan = _plan(tmp_path, INT8, [{"kind": "latency", "max_ms": 50}], "untrained")
    assert main(["validate", str(plan)]) == EXIT_BAD_INPUT
    assert "emulated device" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.aarch64
def test_fp32_and_int8_digits_run_on_the_board(tmp_path: Path) -> None:
    """The fp32 baseline and the int8 artifact both evaluated by ONNX Runtime's ARM kernels on the board."""
    from edgecraft.cli import main

    plan = _plan(tmp_path, INT8, [{"kind": "accuracy", "metric": "top1", "max_drop": 0.02},
                                  {"kind": "accuracy", "metric": "agreement", "max_drop": 0.05}])
    report = tmp_path / "report.json"
    code = main(["run", str(plan), "--cache-dir", str(tmp_path / "cache"), "--report-json", str(report)])
    assert code == EXIT_OK
    (target,) = json.loads(report.read_text())["targets"]
    assert target["emulated"] is True
    fp32, int8 = target["baseline"], target["compressed"]
    assert fp32["metrics"]["top1"] > 0.85  # the trained net, computed on the board
    step = int8["steps"][0]
    assert step["activation_type"] == "int8" and step["reduce_range"] is False  # S8S8 for ARM
    board = int8["runtime"]
    assert board["device"] == "arm64-emulated" and board["emulated"] is True
    assert board["runtime"] == "onnxruntime 1.27.0 (aarch64)"
    assert "QLinearConv" in board["integer_ops"]  # ARM integer kernels ran, not dequantized float
    assert fp32["runtime"]["integer_ops"] == []
    assert board["qemu_cpu"] == "cortex-a76"  # the board's default core: a Raspberry Pi 5 / RK3588 big core
    assert board["cpu_features"]["asimddp"] is True and board["cpu_features"]["sme"] is False
    assert all(v["status"] == "pass" for v in target["contracts"])


def _dynamic_int8_matmul(path: Path) -> np.ndarray:
    """A 64x384 @ 384x384 DynamicQuantizeMatMul (int8 weights, per-column scales): MiniLM's int8 Linear."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = numpy_helper.from_array(rng.integers(-127, 128, (384, 384)).astype(np.int8), "w")
    scales = numpy_helper.from_array((rng.random(384) * 0.01 + 0.001).astype(np.float32), "ws")
    node = helper.make_node("DynamicQuantizeMatMul", ["x", "w", "ws"], ["y"], domain="com.microsoft")
    graph = helper.make_graph([node], "dqmm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 384])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [64, 384])],
                              initializer=[weights, scales])
    model = helper.make_model(graph, ir_version=9, opset_imports=[helper.make_opsetid("", 17),
                                                                  helper.make_opsetid("com.microsoft", 1)])
    onnx.save(model, path)
    return rng.normal(0, 1, (64, 384)).astype(np.float32)


@pytest.mark.aarch64
def test_dynamic_int8_matmul_on_the_board_matches_x86(tmp_path: Path) -> None:
    """The board's default CPU computes MiniLM's dynamic int8 MatMul exactly as x86 does.

    Regression: with QEMU 7.2's ``max`` CPU (SME on) ONNX Runtime 1.27 returned numbers off by up to 70 here,
    and the int8 MiniLM scored cosine 0.20 on the board; ``cortex-a76`` (the default) computes them exactly.
    """
    import onnxruntime as ort
    from edgecraft.backends.onnxruntime.aarch64 import BoardSession, OrtAarch64Options

    x = _dynamic_int8_matmul(tmp_path / "dqmm.onnx")
    x86 = ort.InferenceSession(str(tmp_path / "dqmm.onnx"), providers=["CPUExecutionProvider"])
    (expected,) = x86.run(None, {"x": x})
    session = BoardSession(tmp_path / "dqmm.onnx", OrtAarch64Options(), threads=1)
    try:
        (got,) = session.run({"x": x})
        features = session.describe()["cpu_features"]
    finally:
        session.close()
    assert features["asimddp"] and not features["sme"], features
    assert float(np.abs(got - expected).max()) <= 1e-3 * float(np.abs(expected).max())


@pytest.mark.slow
@pytest.mark.aarch64
def test_conformance_kit_on_the_board() -> None:
    """The SDK's conformance kit builds and runs its models on ort-aarch64 and compares with ONNX Runtime here."""
    from edgecraft.cli import main

    assert main(["plugin", "check", "onnxruntime", "--target", "ort-aarch64"]) == EXIT_OK


@pytest.mark.slow
@pytest.mark.aarch64
def test_benchmark_smoke(tmp_path: Path) -> None:
    out = tmp_path / "ort_arm.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "ort_arm.py"), "--smoke", "--json", str(out)],
                   check=True, timeout=600, capture_output=True)
    figures = json.loads(out.read_text())
    assert figures["ort_arm_ran_int8"] is True
    assert figures["arm_vs_x86_int8_max_abs_diff"] >= 0
    assert figures["board"]["cpu_features"]["asimddp"] is True
    assert "int8" in figures["host_cpu"]  # the host CPU's int8 features are recorded


def _tiny_onnx(folder: Path) -> Path:
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 10)).eval()
    folder.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(model, (torch.zeros(1, 1, 8, 8),), str(folder / "model.onnx"), input_names=["input"],
                      output_names=["logits"], dynamo=False, opset_version=17,
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return folder


def test_local_device_refused_off_arm(tmp_path: Path) -> None:
    """device: local is a real board's node: on this x86 host the session refuses, naming the fix."""
    import platform

    from edgecraft.backends.onnxruntime.aarch64 import OrtAarch64Options
    from edgecraft.backends.onnxruntime.backend import OnnxRuntimeBackend
    from edgecraft.errors import RuntimeFailure

    if platform.machine().lower() in ("aarch64", "arm64"):
        pytest.skip("this host is an ARM board")
    options = OrtAarch64Options(device="local")
    backend = OnnxRuntimeBackend()
    assert not backend.is_emulated("ort-aarch64", options)
    backend.check_available("ort-aarch64", options)  # compiling on x86 for a board is fine
    with pytest.raises(RuntimeFailure, match="runs on an ARM board") as info:
        backend.load(_tiny_onnx(tmp_path / "a"), "ort-aarch64", options, 1)
    assert "placement" in str(info.value.hint)


def test_local_device_runs_the_board_server_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a board the server's code runs in-process: same results as ORT here, facts reported, not emulated."""
    import platform

    import edgecraft.cpu
    import onnxruntime as ort
    from edgecraft.backends.onnxruntime.aarch64 import OrtAarch64Options
    from edgecraft.backends.onnxruntime.backend import OnnxRuntimeBackend

    folder = _tiny_onnx(tmp_path / "a")
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")  # stand in for the board's node
    monkeypatch.setattr(edgecraft.cpu, "user_mode_emulation", lambda: None)  # ... a real one (x86 kernel here)
    session = OnnxRuntimeBackend().load(folder, "ort-aarch64", OrtAarch64Options(device="local"), 1)
    try:
        x = np.random.default_rng(0).standard_normal((3, 1, 8, 8)).astype(np.float32)
        expected = ort.InferenceSession(str(folder / "model.onnx")).run(None, {"input": x})[0]
        np.testing.assert_allclose(session.run({"input": x})[0], expected, rtol=1e-5, atol=1e-5)
        assert len(session.timed_runs({"input": x[:1]}, 3)) == 3
        facts = session.describe()
        assert facts["emulated"] is False and facts["integer_ops"] == [] and "Gemm" in json.dumps(facts)
    finally:
        session.close()
