"""``executorch-aarch64``: the XNNPACK ``.pte`` run by ExecuTorch's C++ runtime on the emulated aarch64 board.

The board tests are marked ``aarch64`` (the board and its executorch wheel are prepared by ``edgecraft device
setup arm64-emulated``, which ./scripts/test runs); the ones that lower models or run plans are ``slow``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from edgecraft.errors import EXIT_BAD_INPUT, EXIT_OK, InputError, RuntimeFailure

pytestmark = pytest.mark.executorch

HERE = Path(__file__).parent
TARGET = "executorch-aarch64"


def _plan(tmp_path: Path, steps: list[dict[str, Any]], contracts: list[dict[str, Any]],
          target: Any = TARGET) -> Path:
    (tmp_path / "etmodels.py").write_text((HERE / "etmodels.py").read_text())
    plan = {
        "schema": "edgecraft.plan/v1", "name": "executorch-aarch64-digits",
        "model": {"kind": "torch", "factory": "etmodels.py:trained", "input_shape": [1, 1, 8, 8]},
        "data": {"calib": {"kind": "digits", "split": "train", "image_size": 8, "max_samples": 64},
                 "test": {"kind": "digits", "split": "test", "image_size": 8}},
        "evaluation": {"dataset": "test", "metrics": ["top1", "agreement"]},
        "latency": {"warmup": 1, "round_ms": 1, "min_calls": 1, "max_calls": 2, "rounds": 1, "threads": 1},
        "steps": steps, "targets": [target], "contracts": contracts,
    }
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


INT8 = [{"strategy": "quantization", "name": "int8",
         "params": {"mode": "static", "calibration_dataset": "calib", "calibration_samples": 64,
                    "accuracy_aware": {"enabled": "off"}}}]


# ---------------------------------------------------------------- no board needed
def test_target_is_emulated_and_declares_its_board_packages(tmp_path: Path) -> None:
    from edgecraft.backends.executorch.backend import ExecutorchBackend
    from edgecraft.backends.executorch.options import ExecutorchAarch64Options

    backend = ExecutorchBackend()
    options = ExecutorchAarch64Options(device_cache_dir=tmp_path)
    assert backend.is_emulated(TARGET, options) and not backend.is_emulated("executorch-xnnpack", options)
    assert not backend.measures_memory_locally(TARGET, options)
    assert backend.board_packages("arm64-emulated") == {"executorch": ["executorch==1.5.1"]}
    assert backend.board_packages("some-other-board") == {}


def test_board_not_set_up_is_a_clear_input_error(tmp_path: Path) -> None:
    from edgecraft.backends.executorch.backend import ExecutorchBackend
    from edgecraft.backends.executorch.options import ExecutorchAarch64Options

    with pytest.raises(InputError) as info:
        ExecutorchBackend().check_available(TARGET, ExecutorchAarch64Options(device_cache_dir=tmp_path))
    assert "edgecraft device setup arm64-emulated" in str(info.value.hint)


def test_board_without_the_executorch_wheel_names_the_setup_command(tmp_path: Path) -> None:
    """A board prepared before executorch joined (no `executorch` package group) is refused, with the command."""
    from edgecraft.backends.executorch.board import board
    from edgecraft.backends.executorch.options import ExecutorchAarch64Options
    from edgecraft.boards import EmulatedDevice

    device = EmulatedDevice.at(tmp_path)
    device.launcher.parent.mkdir(parents=True)
    device.launcher.write_text("#!/bin/sh\n")
    device.manifest_path.write_text(json.dumps({"name": "arm64-emulated", "python": "3.11.2"}))
    with pytest.raises(InputError) as info:
        board(ExecutorchAarch64Options(device_cache_dir=tmp_path))
    assert "executorch's aarch64 wheel is not installed" in str(info.value)
    assert "edgecraft device setup arm64-emulated" in str(info.value.hint)


def test_fp16_refused_on_a_board_without_fp16_arithmetic() -> None:
    from edgecraft.backends.executorch.options import missing_fp16

    assert "no fp16 arithmetic" in str(missing_fp16({"asimdhp": False, "fphp": False, "asimddp": True}))
    assert missing_fp16({"asimdhp": True, "fphp": True}) is None  # a Cortex-A76 computes in fp16


def test_precision_option_is_refused_saying_what_to_write() -> None:
    from edgecraft.backends.executorch.options import ExecutorchAarch64Options, ExecutorchXnnpackOptions
    from pydantic import ValidationError

    for model in (ExecutorchXnnpackOptions, ExecutorchAarch64Options):
        with pytest.raises(ValidationError, match=r"'precision' was removed.*params: \{mode: fp16\}"):
            model.model_validate({"precision": "fp16"})


# ---------------------------------------------------------------- the board
@pytest.fixture(scope="module")
def device() -> Any:
    from edgecraft.backends.executorch.board import board
    from edgecraft.backends.executorch.options import ExecutorchAarch64Options

    return board(ExecutorchAarch64Options())


def _torch_model(module: Any) -> Any:
    from edgecraft.modelio import ModelIO
    from edgecraft.models import TorchModel

    return TorchModel(module, ModelIO.single("input", (1, 1, 8, 8)))


def _lowered(tmp_path: Path, name: str, module: Any) -> Path:
    """``module`` lowered as it is (a half module, as the fp16 step makes it, lowers to XNNPACK's fp16 kernels)."""
    from edgecraft.backends.executorch.lower import lower
    from edgecraft.backends.executorch.options import ExecutorchXnnpackOptions

    path = tmp_path / f"{name}.pte"
    path.write_bytes(lower(_torch_model(module), ExecutorchXnnpackOptions()).buffer)
    return path


def _host(pte: Path, x: np.ndarray) -> np.ndarray:
    import torch
    from executorch.runtime import Runtime

    method = Runtime.get().load_program(pte).load_method("forward")
    return method.execute([torch.from_numpy(x)])[0].numpy()


@pytest.mark.aarch64
def test_device_setup_installs_executorch_on_the_board(capsys: pytest.CaptureFixture[str]) -> None:
    """`edgecraft device setup arm64-emulated` installs executorch's aarch64 wheel (its C++ runtime); again, a no-op."""
    from edgecraft.boards import EmulatedDevice, board_packages
    from edgecraft.cli import main

    assert main(["device", "setup", "arm64-emulated"]) == EXIT_OK
    device = EmulatedDevice.at()
    assert board_packages(device, "executorch") == "/opt/edgecraft/packages/executorch"
    lib = device.rootfs / "opt/edgecraft/packages/executorch/executorch/lib"
    assert (lib / "libexecutorch.so").is_file() and (lib / "libexecutorch_backend_xnnpack.so").is_file()
    capsys.readouterr()
    start = time.monotonic()
    assert main(["device", "setup", "arm64-emulated"]) == EXIT_OK
    assert "downloading" not in capsys.readouterr().out
    assert time.monotonic() - start < 30


@pytest.mark.slow
@pytest.mark.aarch64
def test_board_runner_matches_the_host_runtime(tmp_path: Path, device: Any) -> None:
    """One .pte, two runtimes: the board's C++ runtime (XNNPACK's ARM kernels) and the host's (x86 kernels).
    fp32 agrees to float rounding; int8 (PT2E + XNNPACK quantizer) agrees to a fraction of an output step;
    fp16 comes back as float16 (the half graph ran in fp16 on the board's fp16 arithmetic)."""
    import etmodels
    import torch
    from edgecraft.backends.executorch.board import BoardRunner
    from edgecraft.backends.executorch.quantize_pt2e import quantize

    module = etmodels.trained()
    x = np.random.default_rng(0).standard_normal((1, 1, 8, 8)).astype(np.float32)
    fp32 = _lowered(tmp_path, "fp32", module)
    model = _torch_model(module)
    calib = [{"input": np.random.default_rng(i).standard_normal((1, 1, 8, 8)).astype(np.float32)} for i in range(8)]
    int8 = _lowered(tmp_path, "int8", quantize(model, per_channel=True, dynamic=False, keep_float=[],
                                               calibration=calib))
    fp16 = _lowered(tmp_path, "fp16", etmodels.trained().half())
    for pte, tol in ((fp32, 1e-5), (int8, None)):
        expected = _host(pte, x)
        runner = BoardRunner(device, pte, 1, 300)
        try:
            (got,) = runner.run([x])
            seconds = runner.time([x], 3)
        finally:
            runner.close()
        diff = float(np.abs(got - expected).max())
        if tol is not None:
            assert diff <= tol, (pte.name, diff)
        else:  # int8: ARM and x86 integer kernels may round one step apart, never more than a few
            assert diff <= 0.05 * float(np.abs(expected).max()), (pte.name, diff)
            assert int(got.argmax()) == int(expected.argmax())
        assert len(seconds) == 3 and all(s > 0 for s in seconds)
    with torch.no_grad():
        reference = module(torch.from_numpy(x)).numpy()
    runner = BoardRunner(device, fp16, 1, 300)
    try:
        (half,) = runner.run([x.astype(np.float16)])
        assert runner.output_dtypes == ["float16"]
        with pytest.raises(InputError, match="dtype float64"):  # refused before it is sent
            runner.run([x.astype(np.float64)])
        with pytest.raises(RuntimeFailure, match="failed running the model"):  # the board's runtime refuses it
            runner.run([x.astype(np.int32)])
        (again,) = runner.run([x.astype(np.float16)])  # a failed request leaves the runner serving, in step
    finally:
        runner.close()
    assert np.array_equal(half, again)
    assert float(np.abs(half.astype(np.float32) - reference).max()) <= 0.02 * float(np.abs(reference).max())


@pytest.mark.slow
@pytest.mark.aarch64
def test_dynamic_int8_linear_on_the_board_matches_the_host(tmp_path: Path, device: Any) -> None:
    """PT2E dynamic int8 (XNNPACK's dynamically quantized fully-connected kernels, for Linear-heavy models)."""
    import torch
    from edgecraft.backends.executorch.board import BoardRunner
    from edgecraft.backends.executorch.lower import lower
    from edgecraft.backends.executorch.options import ExecutorchXnnpackOptions
    from edgecraft.backends.executorch.quantize_pt2e import quantize
    from edgecraft.modelio import ModelIO
    from edgecraft.models import TorchModel
    from torch import nn

    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10)).eval()
    model = TorchModel(mlp, ModelIO.single("input", (1, 64)))
    program = lower(model.with_module(quantize(model, per_channel=True, dynamic=True, keep_float=[], calibration=[])),
                    ExecutorchXnnpackOptions())
    assert program.facts["int8_qdq_nodes_delegated"] > 0 and program.facts["not_delegated_nodes"] == 0
    pte = tmp_path / "dynamic.pte"
    pte.write_bytes(program.buffer)
    x = np.random.default_rng(0).standard_normal((1, 64)).astype(np.float32)
    runner = BoardRunner(device, pte, 1, 300)
    try:
        (got,) = runner.run([x])
    finally:
        runner.close()
    expected = _host(pte, x)
    assert float(np.abs(got - expected).max()) <= 1e-3 * float(np.abs(expected).max())


@pytest.mark.aarch64
def test_a_file_that_is_no_program_fails_on_the_board_with_the_reason(tmp_path: Path, device: Any) -> None:
    from edgecraft.backends.executorch.board import BoardRunner

    bad = tmp_path / "model.pte"
    bad.write_bytes(b"not an executorch program" * 10)
    with pytest.raises(RuntimeFailure, match=r"ExecuTorch on the board failed loading model\.pte"):
        BoardRunner(device, bad, 1, 120)


@pytest.mark.aarch64
def test_emulated_latency_contract_needs_opt_in(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edgecraft.cli import main

    plan = _plan(tmp_path, [], [{"kind": "latency", "max_ms": 50}])
    assert main(["validate", str(plan)]) == EXIT_BAD_INPUT
    assert "emulated device" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.aarch64
def test_digits_int8_plan_on_the_board(tmp_path: Path) -> None:
    """fp32 baseline and PT2E int8 evaluated by ExecuTorch on the board; the accuracy contract is judged there."""
    from edgecraft.cli import main

    plan = _plan(tmp_path, INT8, [{"kind": "accuracy", "metric": "top1", "max_drop": 0.01},
                                  {"kind": "accuracy", "metric": "agreement", "max_drop": 0.05}])
    report = tmp_path / "report.json"
    assert main(["run", str(plan), "--cache-dir", str(tmp_path / "cache"), "--report-json", str(report)]) == EXIT_OK
    (target,) = json.loads(report.read_text())["targets"]
    assert target["emulated"] is True
    fp32, int8 = target["baseline"], target["compressed"]
    assert fp32["metrics"]["top1"] > 0.85
    board = int8["runtime"]
    assert board["device"] == "arm64-emulated (cortex-a76)" and board["emulated"] is True
    assert board["runtime"].startswith("executorch 1.5.1 C++ runtime (aarch64")
    assert board["precision"] == "int8" and board["int8_qdq_nodes_delegated"] > 0
    assert board["not_delegated_nodes"] == 0
    assert board["cpu_features"]["asimddp"] is True and board["cpu_features"]["asimdhp"] is True
    assert all(v["status"] == "pass" for v in target["contracts"])


FP16 = [{"strategy": "quantization", "name": "half", "params": {"mode": "fp16"}}]


@pytest.mark.aarch64
def test_fp16_step_compiles_against_the_boards_cpu(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The board's Cortex-A76 has fp16 arithmetic (read on the board): accepted; a board without it: refused."""
    import edgecraft.boards
    from edgecraft.cli import main

    plan = _plan(tmp_path, FP16, [{"kind": "accuracy", "metric": "top1", "max_drop": 0.01}])
    assert main(["validate", str(plan)]) == EXIT_OK
    monkeypatch.setattr(edgecraft.boards, "board_cpu_features", lambda device: {"asimd": True, "asimdhp": False})
    assert main(["validate", str(plan)]) == EXIT_BAD_INPUT
    err = " ".join(capsys.readouterr().err.split())
    assert "steps[0] (half)" in err and "board's CPU has no fp16 arithmetic" in err


def test_fp16_step_for_a_real_board_is_checked_on_its_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``device: local``: the compiling host is not the board, so the emulated board's CPU is never read (the
    node checks its own CPU when it loads the program: tests/backends/executorch/test_executorch_local.py)."""
    import edgecraft.boards
    from edgecraft.cli import main

    def no_board(device: Any) -> dict[str, bool]:
        raise AssertionError("the emulated board's CPU was read for a device: local target")

    monkeypatch.setattr(edgecraft.boards, "board_cpu_features", no_board)
    target = {"target": TARGET, "options": {"device": "local", "device_cache_dir": str(tmp_path / "no-board")}}
    plan = _plan(tmp_path, FP16, [{"kind": "accuracy", "metric": "top1", "max_drop": 0.01}], target=target)
    assert main(["validate", str(plan)]) == EXIT_OK


@pytest.mark.slow
@pytest.mark.aarch64
def test_digits_fp16_plan_on_the_board(tmp_path: Path) -> None:
    """The fp32 baseline and the fp16 step's program, both run by ExecuTorch on the board: the contract judges fp16
    against fp32, and the report says XNNPACK took the convolutions and linears in float16."""
    from edgecraft.cli import main

    plan = _plan(tmp_path, FP16, [{"kind": "accuracy", "metric": "top1", "max_drop": 0.01}])
    report = tmp_path / "report.json"
    assert main(["run", str(plan), "--cache-dir", str(tmp_path / "cache"), "--report-json", str(report)]) == EXIT_OK
    (target,) = json.loads(report.read_text())["targets"]
    fp32, half = target["baseline"]["runtime"], target["compressed"]["runtime"]
    assert fp32["precision"] == "fp32" and set(fp32["delegated_compute_by_dtype"]) == {"float32"}
    assert half["precision"] == "fp16" and set(half["delegated_compute_by_dtype"]) == {"float16"}
    assert half["output_dtypes_on_board"] == ["float16"] and half["not_delegated_nodes"] == 0
    assert all(v["status"] == "pass" for v in target["contracts"])


@pytest.mark.slow
@pytest.mark.aarch64
def test_conformance_kit_on_the_board() -> None:
    """The SDK's conformance kit builds and runs its models on executorch-aarch64 (13 checks)."""
    from edgecraft.cli import main

    assert main(["plugin", "check", "executorch", "--target", TARGET]) == EXIT_OK
