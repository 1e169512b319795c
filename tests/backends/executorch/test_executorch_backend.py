"""The executorch-xnnpack backend: lower a torch model to a .pte, run it with executorch.runtime, match torch;
int8 by PT2E with the XNNPACK quantizer delegated to XNNPACK; clear errors for what it cannot take."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from edgecraft.errors import InputError
from edgecraft.modelio import ModelIO
from edgecraft.models import TorchModel

pytestmark = pytest.mark.executorch

from edgecraft.backends.executorch.backend import ExecutorchBackend  # noqa: E402
from edgecraft.backends.executorch.options import (  # noqa: E402
    META_FILE,
    PROGRAM_FILE,
    TARGET,
    ExecutorchXnnpackOptions,
    fp16_arithmetic,
)
from etmodels import trained  # noqa: E402


def _handle(module: torch.nn.Module) -> TorchModel:
    return TorchModel(module, ModelIO.single("input", (1, 1, 8, 8), output="logits"))


def _build(handle: TorchModel, tmp: Path, name: str = "artifact") -> tuple[Path, list[Path]]:
    backend, options = ExecutorchBackend(), ExecutorchXnnpackOptions()
    native = backend.import_torch(handle, TARGET, options, tmp)
    out = tmp / name
    out.mkdir()
    return out, backend.save(native, TARGET, options, out)


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 1, 8, 8), dtype=np.float32)


def test_target_builds_from_torch_and_declares_it() -> None:
    host, board = ExecutorchBackend().targets()
    for info in (host, board):
        assert info.imports == "torch" and info.native_format is None
        assert {"executorch.xnnpack", "executorch.int8.pt2e", "torch.export"} <= info.capabilities
    assert host.name == TARGET and not host.emulated
    assert board.name == "executorch-aarch64" and board.emulated and "isa.aarch64" in board.capabilities


def test_fp32_program_runs_on_xnnpack_and_matches_torch(tmp_path: Path) -> None:
    module = trained()
    out, files = _build(_handle(module), tmp_path)
    assert sorted(f.name for f in files) == sorted([PROGRAM_FILE, META_FILE])
    backend = ExecutorchBackend()
    assert backend.artifact_size(files) == (out / PROGRAM_FILE).stat().st_size  # the .pte is what ships
    session = backend.load(out, TARGET, ExecutorchXnnpackOptions(), 1)
    assert session.input_names == ["input"]
    for batch in (1, 5):  # the program is exported at batch 1; 5 samples run as 5 calls
        x = _images(batch)
        (got,) = session.run({"input": x})
        with torch.no_grad():
            want = module(torch.from_numpy(x)).numpy()
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-4)
    facts = session.describe()
    assert facts["precision"] == "fp32" and facts["delegated_nodes"] > 0 and facts["not_delegated_nodes"] == 0
    assert facts["runtime"].startswith("executorch 1.5")
    assert all(t > 0 for t in session.timed_runs({"input": _images(1)}, 3))


@pytest.mark.slow
def test_pt2e_int8_is_delegated_to_xnnpack_and_stays_close(tmp_path: Path) -> None:
    from edgecraft.backends.executorch.quantize_pt2e import int8_facts, quantize

    module = trained()
    calib = [{"input": _images(1, seed)} for seed in range(32)]
    converted = quantize(_handle(module), per_channel=True, dynamic=False, keep_float=[], calibration=calib)
    assert int8_facts(converted)["int8_nodes"] > 0
    out, _ = _build(_handle(module).with_module(converted), tmp_path, "int8")
    fp32_out, _ = _build(_handle(module), tmp_path, "fp32")
    backend = ExecutorchBackend()
    session = backend.load(out, TARGET, ExecutorchXnnpackOptions(), 1)
    facts = session.describe()
    # int8 is what XNNPACK runs: the quantize/dequantize pairs are inside the delegate, none outside.
    assert facts["precision"] == "int8" and facts["int8_qdq_nodes_delegated"] > 0
    assert facts["not_delegated_nodes"] == 0
    x = _images(16, 99)
    (got,) = session.run({"input": x})
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    cos = float((got * want).sum() / (np.linalg.norm(got) * np.linalg.norm(want)))
    assert cos > 0.99
    assert (out / PROGRAM_FILE).stat().st_size * 2.5 < (fp32_out / PROGRAM_FILE).stat().st_size


def test_keep_float_pattern_must_match_a_module() -> None:
    from edgecraft.backends.executorch.quantize_pt2e import keep_float_names

    assert keep_float_names(trained(), ["fc", "conv*"], "steps[0]") == ["fc", "conv1", "conv2"]
    with pytest.raises(InputError, match="'head' matches no module"):
        keep_float_names(trained(), ["head"], "steps[0]")


def test_onnx_cannot_feed_it_and_a_missing_artifact_is_named(tmp_path: Path) -> None:
    backend = ExecutorchBackend()
    with pytest.raises(InputError, match="cannot feed it"):
        backend.import_onnx(tmp_path / "m.onnx", TARGET, ExecutorchXnnpackOptions(), tmp_path)
    with pytest.raises(InputError, match=PROGRAM_FILE):
        backend.load(tmp_path, TARGET, ExecutorchXnnpackOptions(), 1)


@pytest.mark.skipif(bool(fp16_arithmetic()), reason="this CPU has fp16 arithmetic: fp16 is allowed here")
def test_fp16_is_refused_where_the_cpu_cannot_compute_in_it() -> None:
    from edgecraft.backends.executorch.options import missing_fp16

    assert "no fp16 arithmetic" in str(missing_fp16())


def test_conformance_kit_passes() -> None:
    from edgecraft.testing import check_plugin

    report = check_plugin("executorch")
    assert report.ok, "\n".join(report.lines())


def test_fp16_lowering_delegates_a_half_graph_and_leaves_the_model_fp32() -> None:
    """The path a CPU with fp16 arithmetic takes (this one may lack it: compile time refuses fp16 there)."""
    from edgecraft.backends.executorch.fp16 import EtFp16
    from edgecraft.backends.executorch.lower import lower
    from edgecraft.backends.executorch.session import ExecutorchSession
    from edgecraft.precision import Fp16Request, Fp16Run
    from executorch.runtime import Runtime

    module = trained()
    run = Fp16Run("steps[0]", "half", TARGET, ExecutorchXnnpackOptions(), Path("."))
    half, details = EtFp16().convert(_handle(module), Fp16Request(), run)
    assert details["tensors_converted"] > 0
    handle = _handle(module)
    assert isinstance(half, TorchModel)
    program = lower(half, ExecutorchXnnpackOptions())
    assert program.facts["precision"] == "fp16" and program.facts["not_delegated_nodes"] == 0
    assert program.facts["half_inputs"] is True and set(program.facts["delegated_compute_by_dtype"]) == {"float16"}
    assert next(module.parameters()).dtype == torch.float32  # the step converted a copy
    session = ExecutorchSession(Runtime.get().load_program(program.buffer).load_method("forward"), handle.io,
                                program.facts, 1, "test")
    x = _images(4)
    (got,) = session.run({"input": x})
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    assert got.dtype == np.float32 and np.abs(got - want).max() < 0.05


@pytest.mark.slow
def test_dynamic_int8_for_linear_layers_is_delegated() -> None:
    from edgecraft.backends.executorch.lower import lower
    from edgecraft.backends.executorch.quantize_pt2e import int8_facts, quantize

    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10)).eval()
    handle = TorchModel(mlp, ModelIO.single("input", (1, 64), output="y"))
    converted = quantize(handle, per_channel=True, dynamic=True, keep_float=[], calibration=[])
    assert int8_facts(converted)["pt2e_qdq_nodes"].get("choose_qparams", 0) > 0  # scales computed per call
    program = lower(handle.with_module(converted), ExecutorchXnnpackOptions())
    assert program.facts["precision"] == "int8" and program.facts["int8_qdq_nodes_not_delegated"] == 0
    assert set(program.facts["delegated_compute_by_dtype"]) == {"int8"}  # every conv/linear takes int8 inputs
