"""End to end through the CLI: run, cache reuse, report shape, verdicts, and every bad-input path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from edgecraft.cli import main

FAST_LATENCY = {"warmup": 2, "repeats": 20, "rounds": 2, "threads": 2}


@pytest.fixture
def workdir(tmp_path: Path, example_dir: Path) -> Path:
    """A copy of the bundled example, so tests can add files next to the plan."""
    for name in ("model.py", "digits_resnet.pt"):
        shutil.copy(example_dir / name, tmp_path / name)
    return tmp_path


def plan_dict(**overrides: Any) -> dict[str, Any]:
    plan: dict[str, Any] = {
        "name": "test",
        "model": {"kind": "torch", "factory": "model.py:build", "input_shape": [1, 1, 32, 32]},
        "data": {"test": {"kind": "digits", "split": "test", "max_samples": 120}},
        "evaluation": {"dataset": "test", "metrics": ["top1", "agreement", "cosine"]},
        "latency": FAST_LATENCY,
        "targets": ["ort-cpu"],
        "contracts": [{"kind": "accuracy", "metric": "top1", "max_drop": 0.01}],
    }
    plan.update(overrides)
    return plan


def run_cli(workdir: Path, plan: dict[str, Any], *extra: str) -> tuple[int, dict[str, Any] | None]:
    path = workdir / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    report = workdir / "report.json"
    report.unlink(missing_ok=True)
    code = main(["run", str(path), "--report-json", str(report), "--cache-dir", str(workdir / "cache"), "-q",
                 *extra])
    return code, json.loads(report.read_text()) if report.exists() else None


def no_partial_artifacts(cache: Path) -> bool:
    return not any(p.name.startswith(".building-") for p in cache.rglob("*")) if cache.exists() else True


@pytest.mark.slow
def test_example_run_report_and_cache(workdir: Path, capsys) -> None:
    code, report = run_cli(workdir, plan_dict())
    assert code == 0, capsys.readouterr()
    assert report is not None and report["schema"] == "edgecraft.report/v1" and report["passed"] is True
    target = report["targets"][0]
    assert target["target"] == "ort-cpu" and target["passed"] is True
    for side in ("baseline", "compressed"):
        m = target[side]
        assert set(m["latency_ms"]) >= {"p50", "p95", "p99"} and m["latency_ms"]["p50"] > 0
        assert m["size_bytes"] > 100_000 and m["metrics"]["top1"] > 0.95
    assert target["baseline"]["metrics"]["agreement"] == 1.0
    contract = target["contracts"][0]
    assert set(contract) >= {"name", "kind", "passed", "measured", "bound"}
    manifest = json.loads((Path(target["artifact"]) / "manifest.json").read_text())
    assert manifest["schema"] == "edgecraft.artifact/v1" and manifest["files"][0]["path"] == "model.onnx"
    assert (Path(target["artifact"]) / "lineage" / "model.onnx").is_file()
    assert target["baseline"]["cached"] is False
    out = capsys.readouterr().out
    assert "PASSED" in out

    code, again = run_cli(workdir, plan_dict())
    assert code == 0 and again is not None
    assert again["targets"][0]["baseline"]["cached"] is True and again["targets"][0]["compressed"]["cached"] is True
    assert again["targets"][0]["compiled_key"] == target["compiled_key"]


@pytest.mark.slow
def test_failed_contract_is_exit_1_with_shortfall(workdir: Path, testing_plugins: str, capsys) -> None:
    plan = plan_dict(steps=[{"strategy": "test-noise", "params": {"std": 1.5}}], contracts=[
        {"kind": "accuracy", "metric": "top1", "max_drop": 0.01},
        {"kind": "size", "min_ratio": 2.0},
        {"kind": "latency", "min_speedup": 1.5},
    ])
    code, report = run_cli(workdir, plan)
    assert code == 1
    assert report is not None and report["passed"] is False
    verdicts = {c["kind"]: c for c in report["targets"][0]["contracts"]}
    assert not verdicts["accuracy"]["passed"] and verdicts["accuracy"]["measured"] > 0.01
    assert "short by" in verdicts["accuracy"]["detail"]
    assert not verdicts["size"]["passed"] and verdicts["size"]["measured"] == pytest.approx(1.0, abs=0.05)
    steps = report["targets"][0]["compressed"]["steps"]
    assert steps[0]["strategy"] == "test-noise" and steps[0]["std"] == 1.5
    assert "FAILED" in capsys.readouterr().out


def test_compile_prints_pipeline_and_rejects_what_target_cannot_do(workdir: Path, testing_plugins: str,
                                                                    capsys) -> None:
    path = workdir / "plan.yaml"
    path.write_text(yaml.safe_dump(plan_dict(steps=[{"strategy": "test-noise", "params": {"std": 0.0}}])))
    assert main(["compile", str(path), "--target", "ort-cpu"]) == 0
    out = capsys.readouterr().out
    assert "steps[0] (test-noise): test-noise -> torch-gaussian [stage torch]" in out and "cache key:" in out

    path.write_text(yaml.safe_dump(plan_dict(steps=[{"strategy": "test-needs"}])))
    assert main(["compile", str(path), "--target", "ort-cpu"]) == 2
    err = capsys.readouterr().err
    assert "step steps[0] (test-needs) on target 'ort-cpu'" in err and "no.such.capability" in err

    assert main(["compile", str(path), "--target", "nope"]) == 2
    assert "not a target of this plan" in capsys.readouterr().err


def test_compile_error_builds_nothing(workdir: Path, testing_plugins: str) -> None:
    code, report = run_cli(workdir, plan_dict(steps=[{"strategy": "test-needs"}]))
    assert code == 2 and report is None
    assert not (workdir / "cache").exists() or not any((workdir / "cache").rglob("manifest.json"))


@pytest.mark.slow
def test_plugin_raising_is_exit_3_and_leaves_no_partial_artifact(workdir: Path, testing_plugins: str,
                                                                 capsys) -> None:
    code, report = run_cli(workdir, plan_dict(steps=[{"strategy": "test-needs", "params": {"when": "apply"}}]))
    assert code == 3 and report is None
    err = capsys.readouterr().err
    assert "test-needs" in err and "edgecraft-testing-plugins" in err and "boom inside a plugin" in err
    cache = workdir / "cache"
    assert no_partial_artifacts(cache)
    assert len(list(cache.rglob("manifest.json"))) == 1  # only the baseline was completed


def test_missing_model_file_is_exit_2(workdir: Path, capsys) -> None:
    code, _ = run_cli(workdir, plan_dict(model={"kind": "onnx", "path": "absent.onnx"}))
    assert code == 2
    assert "model.path" in capsys.readouterr().err


def test_corrupt_onnx_is_exit_2(workdir: Path, capsys) -> None:
    (workdir / "broken.onnx").write_bytes(b"\x08\x07garbage-not-a-protobuf" * 10)
    code, _ = run_cli(workdir, plan_dict(model={"kind": "onnx", "path": "broken.onnx"}))
    assert code == 2
    assert "broken.onnx is not a valid ONNX model" in capsys.readouterr().err
    assert no_partial_artifacts(workdir / "cache")


def test_missing_factory_is_exit_2(workdir: Path, capsys) -> None:
    code, _ = run_cli(workdir, plan_dict(model={"kind": "torch", "factory": "model.py:nope",
                                                "input_shape": [1, 1, 32, 32]}))
    assert code == 2 and "has no attribute 'nope'" in capsys.readouterr().err


def test_dataset_shape_mismatch_is_exit_2(workdir: Path, capsys) -> None:
    plan = plan_dict(data={"test": {"kind": "digits", "split": "test", "image_size": 16}})
    code, _ = run_cli(workdir, plan)
    assert code == 2
    err = capsys.readouterr().err
    assert "dataset 'test'" in err and "[1, 16, 16]" in err and "[1, 32, 32]" in err


def test_wrong_input_shape_is_exit_2(workdir: Path, capsys) -> None:
    code, _ = run_cli(workdir, plan_dict(model={"kind": "torch", "factory": "model.py:build",
                                                "input_shape": [1, 3, 32, 32]}))
    assert code == 2 and "model.input_shape" in capsys.readouterr().err


def test_torch_step_on_onnx_model_is_compile_error(workdir: Path, testing_plugins: str, capsys) -> None:
    import importlib.util

    from edgecraft.model_source import export_onnx
    from edgecraft.modelio import ModelIO
    from edgecraft.models import TorchModel
    spec = importlib.util.spec_from_file_location("ex_model", workdir / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    export_onnx(TorchModel(module.build(), ModelIO.single("input", (1, 1, 32, 32))), workdir / "m.onnx")
    plan = plan_dict(model={"kind": "onnx", "path": "m.onnx"}, steps=[{"strategy": "test-noise"}])
    code, _ = run_cli(workdir, plan)
    assert code == 2
    assert "works on a torch model, but the plan's model (onnx) is an ONNX graph" in capsys.readouterr().err


@pytest.mark.slow
def test_onnx_source_with_npz_and_factory_data(workdir: Path) -> None:
    """An ONNX model file, labelled .npz data, and unlabeled factory data judged by agreement."""
    import importlib.util

    from edgecraft.datasets import load_dataset
    from edgecraft.model_source import export_onnx
    from edgecraft.modelio import ModelIO
    from edgecraft.models import TorchModel
    from edgecraft.plugins.datasets.digits import DigitsParams as DigitsDataset
    spec = importlib.util.spec_from_file_location("ex_model2", workdir / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    export_onnx(TorchModel(module.build(), ModelIO.single("input", (1, 1, 32, 32))), workdir / "m.onnx")
    data = load_dataset("t", DigitsDataset(split="test", max_samples=64), workdir)
    np.savez(workdir / "digits.npz", x=data.x, y=data.y)
    (workdir / "data_factory.py").write_text(
        "import numpy as np\n\ndef make():\n    rng = np.random.default_rng(0)\n"
        "    return rng.random((16, 1, 32, 32), dtype=np.float32), None\n")

    code, report = run_cli(workdir, plan_dict(
        model={"kind": "onnx", "path": "m.onnx"},
        data={"npz": {"kind": "npz", "path": "digits.npz"},
              "noise": {"kind": "factory", "factory": "data_factory.py:make"}},
        evaluation={"dataset": "npz", "metrics": ["top1"]}))
    assert code == 0 and report is not None
    assert report["targets"][0]["baseline"]["metrics"]["top1"] > 0.95

    code, report = run_cli(workdir, plan_dict(
        model={"kind": "onnx", "path": "m.onnx"},
        data={"noise": {"kind": "factory", "factory": "data_factory.py:make"}},
        evaluation={"dataset": "noise", "metrics": ["agreement", "cosine"]},
        contracts=[{"kind": "accuracy", "metric": "agreement", "max_drop": 0.0}]))
    assert code == 0 and report is not None
    assert report["targets"][0]["compressed"]["metrics"]["cosine"] == pytest.approx(1.0)


def test_top1_on_unlabeled_data_is_exit_2(workdir: Path, capsys) -> None:
    (workdir / "data_factory.py").write_text(
        "import numpy as np\n\ndef make():\n    return np.zeros((4, 1, 32, 32), np.float32), None\n")
    code, _ = run_cli(workdir, plan_dict(data={"u": {"kind": "factory", "factory": "data_factory.py:make"}},
                                         evaluation={"dataset": "u", "metrics": ["top1"]}))
    assert code == 2 and "needs labels" in capsys.readouterr().err


@pytest.mark.slow
def test_torch_stage_runs_once_for_several_targets(workdir: Path, testing_plugins: str) -> None:
    """Training-heavy torch steps are shared by the targets of one run, and say so."""
    plan = plan_dict(steps=[{"strategy": "test-noise", "params": {"std": 0.01}}],
                     targets=[{"target": "ort-cpu", "name": "a"},
                              {"target": "ort-cpu", "name": "b", "options": {"inter_op_threads": 2}}])
    code, report = run_cli(workdir, plan)
    assert code == 0 and report is not None
    first, second = (t["compressed"]["steps"][0] for t in report["targets"])
    assert "reused_from_other_target" not in first
    assert second["reused_from_other_target"] is True and second["std"] == 0.01
    assert report["targets"][0]["compressed"]["metrics"] == report["targets"][1]["compressed"]["metrics"]


def test_validate_compiles_every_target_unless_told_not_to(workdir: Path, capsys) -> None:
    """`validate` says ok only for plans `run` would not refuse at compile time (issue 14, item 8)."""
    plan = plan_dict(steps=[{"strategy": "quantization", "params": {"mode": "dynamic"}}],
                     targets=[{"target": "openvino-cpu"}], contracts=[])
    path = workdir / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    assert main(["validate", str(path)]) == 2
    assert "'dynamic' is not available on OpenVINO" in capsys.readouterr().err
    assert main(["validate", "--no-compile", str(path)]) == 0
    assert "schema and plugins" in capsys.readouterr().out
