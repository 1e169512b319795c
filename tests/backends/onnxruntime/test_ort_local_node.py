"""``ort-aarch64`` with ``device: local`` in a process that runs *emulated*: labelled emulated, never a board.

A Ray node inside the emulated board (tests/execute/test_ray_board.py) is an aarch64 process on this x86 kernel.
Here the same situation is made on the host by making ``platform.machine()`` say aarch64 while the kernel stays
x86_64 (the check reads the kernel, ``/proc/sys/kernel/arch``): the in-process session must report QEMU's
timings as emulated, and the backend must call the target emulated (so latency contracts need allow_emulated).
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import pytest


def _gemm_onnx(folder: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir(parents=True, exist_ok=True)
    weights = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3) / 10, "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["input", "w"], ["logits"])], "g",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 4])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 3])], [weights])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), folder / "model.onnx")
    return folder


def test_local_session_in_an_emulated_process_is_labelled_emulated(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from edgecraft.backends.onnxruntime.aarch64 import OrtAarch64Options
    from edgecraft.backends.onnxruntime.backend import OnnxRuntimeBackend
    from edgecraft.cpu import user_mode_emulation

    if platform.machine().lower() in ("aarch64", "arm64"):
        pytest.skip("this host is ARM: its kernel is too, nothing here runs emulated")
    folder = _gemm_onnx(tmp_path / "a")
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")  # what QEMU tells the process; the kernel is x86
    assert user_mode_emulation() is not None
    backend, options = OnnxRuntimeBackend(), OrtAarch64Options(device="local")
    assert backend.is_emulated("ort-aarch64", options)
    assert backend.measures_memory_locally("ort-aarch64", options)  # the model is in this process
    session = backend.load(folder, "ort-aarch64", options, 1)
    try:
        x = np.ones((2, 4), np.float32)
        assert np.allclose(session.run({"input": x})[0], x @ (np.arange(12, dtype=np.float32).reshape(4, 3) / 10))
        facts = session.describe()
    finally:
        session.close()
    assert facts["emulated"] is True and "kernel" in facts["emulator"]
    assert "says nothing about a real ARM core" in facts["note"]


def test_device_emulated_stays_emulated_and_local_on_x86_is_not() -> None:
    from edgecraft.backends.onnxruntime.aarch64 import OrtAarch64Options
    from edgecraft.backends.onnxruntime.backend import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend()
    assert backend.is_emulated("ort-aarch64", OrtAarch64Options())
    assert not backend.measures_memory_locally("ort-aarch64", OrtAarch64Options())
    assert not backend.is_emulated("ort-cpu", OrtAarch64Options(device="local"))
    if platform.machine().lower() not in ("aarch64", "arm64"):
        assert not backend.is_emulated("ort-aarch64", OrtAarch64Options(device="local"))  # the CLI's x86 host
