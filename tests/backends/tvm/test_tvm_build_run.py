"""Build for aarch64 and the host, run on the host, the emulated device and a loopback 'board'."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from edgecraft.backends.tvm.backend import AARCH64, HOST, TvmBackend
from edgecraft.backends.tvm.compile import LIBRARY, PROBE
from edgecraft.backends.tvm.elf import elf_machine
from edgecraft.backends.tvm.options import AArch64Options, HostOptions
from edgecraft.errors import RuntimeFailure

pytestmark = pytest.mark.tvm


def _build(onnx_path: Path, target: str, options, out: Path) -> list[Path]:
    backend = TvmBackend()
    out.mkdir(parents=True, exist_ok=True)
    return backend.save(backend.import_onnx(onnx_path, target, options, out), target, options, out)


def _ort(onnx_path: Path, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]


@pytest.fixture(scope="module")
def aarch64_artifact(cnn_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("aarch64")
    _build(cnn_onnx, AARCH64, AArch64Options(cpu="cortex-a76", mattr=["+dotprod"]), out)
    return out


def test_aarch64_artifact_is_aarch64_elf(aarch64_artifact: Path) -> None:
    assert elf_machine(aarch64_artifact / LIBRARY) == "aarch64"
    files = [aarch64_artifact / LIBRARY]
    assert TvmBackend().artifact_size(files) == (aarch64_artifact / LIBRARY).stat().st_size


def test_host_build_runs_and_matches_ort(cnn_onnx: Path, digits_batch: np.ndarray, tmp_path: Path) -> None:
    _build(cnn_onnx, HOST, HostOptions(), tmp_path)
    assert elf_machine(tmp_path / LIBRARY) == "x86_64"
    session = TvmBackend().load(tmp_path, HOST, HostOptions(), threads=1)
    try:
        out = session.run({"input": digits_batch})[0]  # batch 4 on a dynamic-batch model
        np.testing.assert_allclose(out, _ort(cnn_onnx, digits_batch), atol=1e-4)
        times = session.timed_runs({"input": digits_batch[:1]}, 5)
        assert len(times) == 5 and all(t > 0 for t in times)
        facts = session.describe()
        assert facts["emulated"] is False and facts["host_check_max_abs_diff"] < 1e-4
    finally:
        session.close()


def test_tampered_reference_fails_the_host_check(cnn_onnx: Path, tmp_path: Path) -> None:
    _build(cnn_onnx, HOST, HostOptions(), tmp_path)
    with np.load(tmp_path / PROBE) as probe:
        arrays = dict(probe)
    arrays["out0"] = arrays["out0"] + 0.5
    np.savez(tmp_path / PROBE, **arrays)
    with pytest.raises(RuntimeFailure, match="differ from ONNX Runtime on the host"):
        TvmBackend().load(tmp_path, HOST, HostOptions(), threads=1)


def test_aarch64_artifact_refused_by_host_loader(aarch64_artifact: Path) -> None:
    # The host target cannot dlopen an aarch64 library; the error must say so, not crash.
    with pytest.raises(Exception):  # noqa: B017 - TVM raises its own error type
        TvmBackend().load(aarch64_artifact, HOST, HostOptions(), threads=1)


@pytest.mark.slow
def test_emulated_device_matches_ort(emulated_device, aarch64_artifact: Path, cnn_onnx: Path,
                                     digits_batch: np.ndarray) -> None:
    options = AArch64Options(cpu="cortex-a76", mattr=["+dotprod"], device_cache_dir=emulated_device.home.parent)
    backend = TvmBackend()
    first = backend.load(aarch64_artifact, AARCH64, options, threads=1)
    second = backend.load(aarch64_artifact, AARCH64, options, threads=1)  # shares the RPC session
    try:
        out = first.run({"input": digits_batch})[0]
        diff = float(np.max(np.abs(out - _ort(cnn_onnx, digits_batch))))
        assert diff < 1e-4, diff
        np.testing.assert_array_equal(second.run({"input": digits_batch})[0], out)
        facts = first.describe()
        assert facts["emulated"] is True and facts["device"] == "arm64-emulated"
        assert facts["machine"] == "aarch64" and "qemu" in facts["emulator"]
        times = first.timed_runs({"input": digits_batch[:1]}, 3)
        assert len(times) == 3 and all(t > 0 for t in times)
    finally:
        first.close()
        second.close()


@pytest.mark.slow
def test_rpc_board_option_on_loopback(emulated_device, aarch64_artifact: Path, digits_batch: np.ndarray,
                                      cnn_onnx: Path) -> None:
    """device: rpc against a TVM RPC server at an address (here the emulated device's, on loopback).

    The emulated device's server announces itself (its session folder), so taking it for a real board is
    refused, and with board_emulated: true it runs, labelled emulated."""
    from edgecraft.backends.tvm.rpc_server import EmulatedRPCServer

    with EmulatedRPCServer(emulated_device, name="loop") as server:
        host, port = server.address
        real = AArch64Options(cpu="cortex-a76", mattr=["+dotprod"], device="rpc", rpc_host=host, rpc_port=port)
        with pytest.raises(RuntimeFailure, match="is an emulated board"):
            TvmBackend().load(aarch64_artifact, AARCH64, real, threads=1)
        options = real.model_copy(update={"board_emulated": True})
        assert TvmBackend().is_emulated(AARCH64, options)
        session = TvmBackend().load(aarch64_artifact, AARCH64, options, threads=1)
        try:
            assert session.describe()["device"] == f"rpc://{host}:{port}"
            assert session.describe()["emulated"] is True and session.describe()["board"] == "loop"
            np.testing.assert_allclose(session.run({"input": digits_batch})[0], _ort(cnn_onnx, digits_batch),
                                       atol=1e-4)
        finally:
            session.close()


@pytest.mark.slow
def test_unreachable_board_is_a_runtime_failure(aarch64_artifact: Path) -> None:
    from edgecraft.backends.tvm.rpc_server import free_port

    options = AArch64Options(device="rpc", rpc_host="127.0.0.1", rpc_port=free_port())
    with pytest.raises(RuntimeFailure) as info:
        TvmBackend().load(aarch64_artifact, AARCH64, options, threads=1)
    assert "cannot reach the TVM RPC server" in info.value.message
    assert "tvm.exec.rpc_server" in str(info.value.hint)
