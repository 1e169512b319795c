"""Bad paths: a missing toolchain, extra or device is exit code 2 with the command that fixes it."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from edgecraft.backends.tvm.backend import AARCH64, HOST, TvmBackend
from edgecraft.backends.tvm.options import AArch64Options, HostOptions
from edgecraft.errors import EXIT_BAD_INPUT, InputError

pytestmark = pytest.mark.tvm


def _path_with(tmp_path: Path, *tools: str) -> str:
    """A PATH holding only links to ``tools`` (so every other tool is 'not installed')."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in tools:
        real = next(Path(p) / tool for p in os.environ["PATH"].split(os.pathsep) if (Path(p) / tool).exists())
        (bin_dir / tool).symlink_to(real)
    return str(bin_dir)


def test_missing_cross_compiler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", _path_with(tmp_path))
    with pytest.raises(InputError) as info:
        TvmBackend().check_available(AARCH64, AArch64Options())
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert "aarch64-linux-gnu-g++" in info.value.message
    assert "apt-get install -y g++-aarch64-linux-gnu" in str(info.value)


def test_missing_qemu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", _path_with(tmp_path, "aarch64-linux-gnu-g++"))
    with pytest.raises(InputError) as info:
        TvmBackend().check_available(AARCH64, AArch64Options())
    assert "qemu-aarch64-static" in info.value.message
    assert "apt-get install -y qemu-user-static" in str(info.value)
    # A board needs no QEMU: the same PATH is fine for device: rpc.
    TvmBackend().check_available(AARCH64, AArch64Options(device="rpc", rpc_host="127.0.0.1"))


def test_missing_tvm_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tvm" else real(name, *a))
    with pytest.raises(InputError) as info:
        TvmBackend().check_available(HOST, HostOptions())
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert "pip install 'edgecraft[tvm]'" in str(info.value)


def test_device_not_set_up(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        TvmBackend().check_available(AARCH64, AArch64Options(device_cache_dir=tmp_path))
    assert "edgecraft device setup arm64-emulated" in str(info.value)


def test_unknown_cpu_lists_known_ones() -> None:
    with pytest.raises(InputError) as info:
        TvmBackend().check_available(AARCH64, AArch64Options(device="rpc", rpc_host="h", cpu="cortex-a99"))
    assert "cortex-a99" in info.value.message
    assert "cortex-a72" in str(info.value.hint)


def test_tuning_on_a_board_without_tracker_is_refused() -> None:
    """MetaSchedule's RPC runner asks a tracker for boards: device: rpc cannot tune."""
    opts = AArch64Options(device="rpc", rpc_host="h", tuning={"trials": 4})
    with pytest.raises(InputError, match="tuning on tvm-aarch64 needs device: tracker"):
        TvmBackend().check_available(AARCH64, opts)


def test_setup_without_debootstrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgecraft.backends.tvm.device import setup_emulated_device

    monkeypatch.setenv("PATH", _path_with(tmp_path))
    with pytest.raises(InputError) as info:
        setup_emulated_device(tmp_path / "cache")
    assert "apt-get install -y debootstrap" in str(info.value)
    assert not (tmp_path / "cache" / "arm64-emulated").exists()


def test_cli_device_setup_exit_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    from edgecraft.cli import main

    monkeypatch.setenv("PATH", _path_with(tmp_path))
    code = main(["device", "setup", "arm64-emulated", "--cache-dir", str(tmp_path / "cache")])
    assert code == EXIT_BAD_INPUT
    assert "apt-get install -y debootstrap" in capsys.readouterr().err


def test_bad_onnx_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a protobuf")
    with pytest.raises(InputError, match="cannot read the ONNX model"):
        TvmBackend().import_onnx(bad, HOST, HostOptions(), tmp_path)


def test_unsupported_operator_is_named(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 1, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.INT32, [1, 1, 2, 2])
    w = helper.make_tensor("w", TensorProto.UINT8, [1, 1, 3, 3], [1] * 9)
    node = helper.make_node("ConvInteger", ["x", "w"], ["y"])
    graph = helper.make_graph([node], "g", [x], [y], initializer=[w])
    path = tmp_path / "convint.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(InputError) as info:
        TvmBackend().import_onnx(path, HOST, HostOptions(), tmp_path)
    assert "ConvInteger" in str(info.value)
