"""The openvino-cpu backend: build an IR, run it, match ONNX Runtime, fail cleanly on bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from edgecraft.cpu import has_bf16
from edgecraft.errors import EXIT_BAD_INPUT, InputError

pytestmark = pytest.mark.openvino

from edgecraft.backends.openvino.backend import (  # noqa: E402
    IR_BIN,
    IR_XML,
    TARGET,
    OpenVinoBackend,
    OpenVinoCpuOptions,
)


def _export_cnn(path: Path) -> Path:
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1, stride=2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    ).eval()
    torch.onnx.export(model, (torch.randn(1, 1, 32, 32),), str(path), input_names=["input"],
                      output_names=["output"], dynamo=False, opset_version=17)
    return path


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export_cnn(tmp_path_factory.mktemp("ov") / "cnn.onnx")


@pytest.fixture
def artifact(onnx_file: Path, tmp_path: Path) -> Path:
    backend, options = OpenVinoBackend(), OpenVinoCpuOptions()
    native = backend.import_onnx(onnx_file, TARGET, options, tmp_path)
    out = tmp_path / "artifact"
    out.mkdir()
    files = backend.save(native, TARGET, options, out)
    assert [f.name for f in files] == [IR_XML, IR_BIN]
    return out


def test_target_declares_capabilities_and_native_format() -> None:
    (info,) = OpenVinoBackend().targets()
    assert info.name == TARGET
    assert info.native_format == "openvino"
    assert {"openvino.nncf", "openvino.int8", "precision.bf16"} <= info.capabilities
    assert info.options_model is OpenVinoCpuOptions


def test_outputs_match_onnxruntime(onnx_file: Path, artifact: Path) -> None:
    import onnxruntime as ort

    x = np.random.default_rng(0).standard_normal((1, 1, 32, 32)).astype(np.float32)
    expected = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    session = OpenVinoBackend().load(artifact, TARGET, OpenVinoCpuOptions(), threads=2)
    assert session.input_names == ["input"]
    (got,) = session.run({"input": x})
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_ir_keeps_fp32_weights(onnx_file: Path, artifact: Path) -> None:
    """save_model's default would compress weights to fp16; the artifact must hold what was measured."""
    import onnx

    weights = sum(int(np.prod(t.dims)) for t in onnx.load(str(onnx_file)).graph.initializer)
    assert (artifact / IR_BIN).stat().st_size >= 4 * weights * 0.95


def test_default_precision_is_f32_and_bf16_is_reported(artifact: Path) -> None:
    backend = OpenVinoBackend()
    f32 = backend.load(artifact, TARGET, OpenVinoCpuOptions(), threads=2).describe()
    assert f32["precision"] == "f32"
    assert f32["performance_hint"] == "latency"
    assert f32["threads"] == 2 and f32["streams"] == 1
    assert f32["int8"] is False
    assert f32["cpu_pinning"] is False
    assert "precision_note" not in f32
    bf16 = backend.load(artifact, TARGET, OpenVinoCpuOptions(inference_precision="bf16",
                                                             performance_hint="throughput", threads=1),
                        threads=2).describe()
    # What runs depends on the CPU (the suite's header prints its features): bf16 only with bf16 compute.
    if has_bf16():
        assert bf16["precision"] == "bf16"
        assert "precision_note" not in bf16
    else:
        assert bf16["precision"] == "f32"
        assert "no bf16 compute" in bf16["precision_note"] and "runs the model in f32" in bf16["precision_note"]
    assert bf16["performance_hint"] == "throughput"
    assert bf16["threads"] == 1


@pytest.mark.parametrize(("requested", "reported", "bf16_cpu", "precision", "note"), [
    ("f32", "f32", True, "f32", None),
    ("f32", "f32", False, "f32", None),
    ("bf16", "bf16", True, "bf16", None),
    ("bf16", "f32", False, "f32", "this CPU has no bf16 compute (no avx512_bf16 or amx_bf16 flag)"),
    ("bf16", None, False, "f32", "OpenVINO runs the model in f32"),  # property unreadable: the CPU decides
    ("bf16", "f32", True, "f32", "OpenVINO compiled the model in f32"),  # a bf16 CPU that still chose f32
])
def test_effective_precision_on_both_kinds_of_cpu(requested: str, reported: str | None, bf16_cpu: bool,
                                                  precision: str, note: str | None) -> None:
    """The report's precision is what runs, on either kind of CPU, with the reason when it differs."""
    from edgecraft.backends.openvino.session import effective_precision

    actual, why = effective_precision(requested, reported, bf16_cpu=bf16_cpu)
    assert actual == precision
    assert (why is None) if note is None else (note in why)


def test_artifact_reloads_from_a_copy(artifact: Path, tmp_path: Path) -> None:
    """An artifact is self-contained: a copy elsewhere (a cache entry) loads and gives the same outputs."""
    import shutil

    x = np.ones((1, 1, 32, 32), np.float32)
    first = OpenVinoBackend().load(artifact, TARGET, OpenVinoCpuOptions(), threads=1).run({"input": x})[0]
    copy = shutil.copytree(artifact, tmp_path / "cache-entry")
    again = OpenVinoBackend().load(copy, TARGET, OpenVinoCpuOptions(), threads=1).run({"input": x})[0]
    np.testing.assert_array_equal(first, again)


def test_options_are_strict() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        OpenVinoCpuOptions(precision="bf16")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        OpenVinoCpuOptions(inference_precision="int4")  # type: ignore[arg-type]


def test_corrupt_ir_is_input_error(artifact: Path) -> None:
    (artifact / IR_XML).write_text("<net name='x'><layers><layer id='0' type='Bogus'")
    with pytest.raises(InputError, match="could not read the IR") as info:
        OpenVinoBackend().load(artifact, TARGET, OpenVinoCpuOptions(), threads=1)
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert "rebuild" in str(info.value)


def test_truncated_weights_are_input_error(artifact: Path) -> None:
    data = (artifact / IR_BIN).read_bytes()
    (artifact / IR_BIN).write_bytes(data[: len(data) // 3])
    with pytest.raises(InputError) as info:
        OpenVinoBackend().load(artifact, TARGET, OpenVinoCpuOptions(), threads=1)
    assert info.value.exit_code == EXIT_BAD_INPUT


def test_missing_bin_is_input_error(artifact: Path) -> None:
    (artifact / IR_BIN).unlink()
    with pytest.raises(InputError, match="incomplete"):
        OpenVinoBackend().load(artifact, TARGET, OpenVinoCpuOptions(), threads=1)


def test_corrupt_onnx_is_input_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07not an onnx model")
    with pytest.raises(InputError, match="could not convert"):
        OpenVinoBackend().import_onnx(bad, TARGET, OpenVinoCpuOptions(), tmp_path)


_WITHOUT_OPENVINO = """
import sys
sys.modules["openvino"] = None  # makes `import openvino` raise ImportError, find_spec too
from edgecraft.backends.openvino.backend import OpenVinoBackend, OpenVinoCpuOptions
from edgecraft.errors import InputError
try:
    OpenVinoBackend().check_available("openvino-cpu", OpenVinoCpuOptions())
except InputError as exc:
    print(exc.exit_code, str(exc))
    raise SystemExit(0)
raise SystemExit("no error")
"""


def test_missing_openvino_says_how_to_install() -> None:
    proc = subprocess.run([sys.executable, "-c", _WITHOUT_OPENVINO], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("2 ")
    assert "pip install 'edgecraft[openvino]'" in proc.stdout


def test_plugin_registration_does_not_import_openvino() -> None:
    code = ("import sys; import edgecraft.backends.openvino.plugin as p; "
            "seen = []; p.edgecraft_register_backends(seen.append); "
            "assert seen[0].name == 'openvino'; "
            "assert 'openvino' not in sys.modules, 'openvino imported at registration'; print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.stdout.strip() == "ok", proc.stderr


# ---------------------------------------------------------------- the bundled example, end to end
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "digits"


@pytest.fixture(scope="module")
def example_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (EXAMPLE / "digits_resnet.pt").is_file():
        pytest.skip("the bundled digits weights are not in this checkout")
    from edgecraft.loading import load_callable
    from edgecraft.model_source import export_onnx
    from edgecraft.modelio import ModelIO
    from edgecraft.models import TorchModel

    module = load_callable("model.py:build", EXAMPLE, field="model.factory")()
    path = tmp_path_factory.mktemp("example") / "digits.onnx"
    export_onnx(TorchModel(module, ModelIO.single("input", (1, 1, 32, 32))), path, opset=18, exporter="dynamo")
    return path


@pytest.mark.slow
def test_bundled_example_matches_onnxruntime(example_onnx: Path, tmp_path: Path) -> None:
    import onnxruntime as ort
    from edgecraft.datasets import load_dataset
    from edgecraft.plugins.datasets.digits import DigitsParams as DigitsDataset

    data = load_dataset("test", DigitsDataset(split="test", image_size=32, max_samples=64), EXAMPLE)
    reference = ort.InferenceSession(str(example_onnx), providers=["CPUExecutionProvider"])
    backend, options = OpenVinoBackend(), OpenVinoCpuOptions()
    out = tmp_path / "artifact"
    out.mkdir()
    backend.save(backend.import_onnx(example_onnx, TARGET, options, tmp_path), TARGET, options, out)
    session = backend.load(out, TARGET, options, threads=2)
    for i in range(len(data)):
        x = data.x[i:i + 1]
        expected = reference.run(None, {"input": x})[0]
        (got,) = session.run({"input": x})
        np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)


@pytest.mark.slow
def test_bundled_plan_on_openvino_reloads_from_the_cache(tmp_path: Path) -> None:
    if not (EXAMPLE / "digits_resnet.pt").is_file():
        pytest.skip("the bundled digits weights are not in this checkout")
    import yaml
    from edgecraft.plan import RawPlan
    from edgecraft.registry import build_registry
    from edgecraft.runner import run_plan

    raw = yaml.safe_load((EXAMPLE / "plan.yaml").read_text())
    raw.update(targets=["openvino-cpu"], contracts=[], steps=[],
               latency={"threads": 2, "warmup": 2, "repeats": 10, "rounds": 2})
    plan, base, registry = RawPlan.model_validate(raw), EXAMPLE, build_registry()
    first = run_plan(plan, registry, base_dir=base, cache_dir=tmp_path).targets[0]
    again = run_plan(plan, registry, base_dir=base, cache_dir=tmp_path).targets[0]
    assert first.target_name == "openvino-cpu" and first.device["precision"] == "f32"
    assert first.baseline.metrics["top1"] > 0.9
    assert again.baseline.cached is True
    assert again.baseline.metrics == first.baseline.metrics
