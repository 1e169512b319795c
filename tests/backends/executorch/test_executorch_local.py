"""``executorch-aarch64`` with ``device: local``: the real-board mode (the target placed on a Ray node on the board).

On the board the runner (``board_runner.cpp``) is compiled with the node's own C++ compiler against the node's
executorch package and runs natively. Here (x86) the session must refuse with the placement hint; under
user-mode emulation (a Ray node inside the emulated board) it must refuse naming why; and the native path itself
is exercised on this host's CPU, standing in for the board (the x86 executorch wheel ships the same C++ runtime
and headers): compiled, run, outputs equal to the Python runtime's, the binary reused from the cache.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from edgecraft.errors import RuntimeFailure

pytestmark = pytest.mark.executorch

HERE = Path(__file__).parent
TARGET = "executorch-aarch64"


def _artifact(folder: Path) -> tuple[Path, Any]:
    """The digits CNN lowered to an XNNPACK .pte, saved as the backend saves an artifact."""
    import sys

    sys.path.insert(0, str(HERE))
    import etmodels
    from edgecraft.backends.executorch.backend import ExecutorchBackend
    from edgecraft.backends.executorch.options import ExecutorchAarch64Options
    from edgecraft.modelio import ModelIO
    from edgecraft.models import TorchModel

    module = etmodels.trained()
    backend, options = ExecutorchBackend(), ExecutorchAarch64Options(device="local")
    native = backend.import_torch(TorchModel(module, ModelIO.single("input", (1, 1, 8, 8))), TARGET, options, folder)
    folder.mkdir(parents=True, exist_ok=True)
    backend.save(native, TARGET, options, folder)
    return folder, module


def test_local_is_not_emulated_and_needs_no_board_to_compile(tmp_path: Path) -> None:
    from edgecraft.backends.executorch.backend import ExecutorchBackend
    from edgecraft.backends.executorch.options import ExecutorchAarch64Options

    backend = ExecutorchBackend()
    options = ExecutorchAarch64Options(device="local", device_cache_dir=tmp_path / "no-board-here")
    assert not backend.is_emulated(TARGET, options)
    assert backend.is_emulated(TARGET, ExecutorchAarch64Options())
    backend.check_available(TARGET, options)  # compiling on x86 for a board is fine: no emulated board needed


@pytest.mark.slow
def test_local_device_refused_off_arm(tmp_path: Path) -> None:
    from edgecraft.backends.executorch.backend import ExecutorchBackend
    from edgecraft.backends.executorch.options import ExecutorchAarch64Options

    if platform.machine().lower() in ("aarch64", "arm64"):
        pytest.skip("this host is an ARM board")
    folder, _ = _artifact(tmp_path / "a")
    with pytest.raises(RuntimeFailure, match="runs on an ARM board") as info:
        ExecutorchBackend().load(folder, TARGET, ExecutorchAarch64Options(device="local"), 1)
    assert "placement" in str(info.value.hint) and "board:NAME" in str(info.value.hint)


def test_local_device_refused_under_user_mode_emulation(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ray node inside the emulated board is an aarch64 process on an x86 kernel: it cannot start the native
    runner (no binfmt_misc), so it refuses, naming device: emulated, instead of running something else."""
    import edgecraft.cpu
    from edgecraft.backends.executorch.local import require_local_board

    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(edgecraft.cpu, "user_mode_emulation",
                        lambda: "this aarch64 process runs on a x86_64 kernel (user-mode emulation, e.g. QEMU)")
    with pytest.raises(RuntimeFailure, match="binfmt_misc") as info:
        require_local_board()
    assert "device: emulated" in str(info.value.hint)


def test_no_compiler_is_a_clear_input_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from edgecraft.backends.executorch import local
    from edgecraft.errors import InputError

    monkeypatch.setenv("CXX", "no-such-compiler-here")
    monkeypatch.setattr(local.shutil, "which", lambda name: None)
    with pytest.raises(InputError, match="no C\\+\\+ compiler") as info:
        local.compiler()
    assert "apt-get install g++" in str(info.value.hint)


@pytest.mark.slow
def test_local_runner_compiled_and_run_natively(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """This host's CPU stands in for the board: the runner is compiled with the host's c++ against the host's
    executorch package, runs natively, and gives the Python runtime's outputs; the second load reuses it."""
    import edgecraft.cpu
    import torch
    from edgecraft.backends.executorch.backend import ExecutorchBackend
    from edgecraft.backends.executorch.options import ExecutorchAarch64Options
    from executorch.runtime import Runtime

    folder, module = _artifact(tmp_path / "a")
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")  # stand in for the board's node
    monkeypatch.setattr(edgecraft.cpu, "user_mode_emulation", lambda: None)
    monkeypatch.setenv("EDGECRAFT_CACHE_DIR", str(tmp_path / "cache"))
    backend, options = ExecutorchBackend(), ExecutorchAarch64Options(device="local")
    x = np.random.default_rng(0).standard_normal((4, 1, 8, 8)).astype(np.float32)
    session = backend.load(folder, TARGET, options, 1)
    try:
        got = session.run({"input": x})[0]
        seconds = session.timed_runs({"input": x[:1]}, 3)
        facts = session.describe()
    finally:
        session.close()
    method = Runtime.get().load_program(folder / "model.pte").load_method("forward")
    expected = np.concatenate([method.execute([torch.from_numpy(x[i:i + 1])])[0].numpy() for i in range(4)])
    assert float(np.abs(got - expected).max()) <= 1e-5
    with torch.no_grad():
        assert float(np.abs(got - module(torch.from_numpy(x)).numpy()).max()) <= 1e-4
    assert len(seconds) == 3 and all(s > 0 for s in seconds)
    assert facts["emulated"] is False and facts["qemu_cpu"] == "none (native)"
    assert facts["runtime"].startswith("executorch 1.5.1 C++ runtime")
    (binary,) = (tmp_path / "cache" / "native").glob("executorch-runner-aarch64-*")
    built = binary.stat().st_mtime_ns
    backend.load(folder, TARGET, options, 1).close()
    assert binary.stat().st_mtime_ns == built  # cached: not compiled again


@pytest.mark.slow
def test_fp16_program_refused_on_a_node_without_fp16_arithmetic(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The fp16 step's program on a real board is checked against the CPU features the runner reads there
    (compile time ran on the CLI's host); without fp16 arithmetic it is refused, never reported as fp16."""
    import json

    import edgecraft.boards
    import edgecraft.cpu
    from edgecraft.backends.executorch.backend import ExecutorchBackend
    from edgecraft.backends.executorch.options import META_FILE, ExecutorchAarch64Options
    from edgecraft.errors import InputError

    folder, _ = _artifact(tmp_path / "a")
    meta = json.loads((folder / META_FILE).read_text())
    meta["facts"]["half_inputs"] = True  # what the fp16 step's lowering records
    (folder / META_FILE).write_text(json.dumps(meta))
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(edgecraft.cpu, "user_mode_emulation", lambda: None)
    monkeypatch.setattr(edgecraft.boards, "decode_hwcaps", lambda hwcap, hwcap2: {"asimd": True, "asimdhp": False})
    monkeypatch.setenv("EDGECRAFT_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(InputError, match="cannot run in fp16 on this board"):
        ExecutorchBackend().load(folder, TARGET, ExecutorchAarch64Options(device="local"), 1)
