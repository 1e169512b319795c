"""Lifecycle hooks and the MLflow integration (local file store, no server)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from edgecraft.cli import main
from edgecraft.hookspecs import hookimpl

PLAN = {
    "name": "hooks-demo",
    "model": {"kind": "torch", "factory": "model.py:build", "input_shape": [1, 1, 32, 32], "exporter": "torchscript"},
    "data": {"test": {"kind": "digits", "split": "test", "max_samples": 40}},
    "evaluation": {"dataset": "test", "metrics": ["top1"]},
    "latency": {"warmup": 2, "repeats": 40, "rounds": 4},
    "targets": ["ort-cpu"],
    "contracts": [{"kind": "accuracy", "metric": "top1", "max_drop": 0.01}, {"kind": "size", "min_ratio": 2.0}],
    "gate": {"time_budget_s": 0},
}


@pytest.fixture
def plan_file(tmp_path: Path, example_dir: Path) -> Path:
    for name in ("model.py", "digits_resnet.pt"):
        shutil.copy(example_dir / name, tmp_path / name)
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(PLAN))
    return path


class Recorder:
    """An integration plugin recording the lifecycle hooks it receives."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    @hookimpl
    def edgecraft_run_started(self, plan: dict[str, Any], targets: list[str]) -> None:
        self.calls.append(("run_started", (plan["name"], targets)))

    @hookimpl
    def edgecraft_target_finished(self, target: dict[str, Any]) -> None:
        self.calls.append(("target_finished", (target["target"], target["passed"])))


@pytest.mark.slow
def test_lifecycle_hooks_fire_in_order(plan_file: Path) -> None:
    from edgecraft.plan.loading import load_plan
    from edgecraft.registry import build_registry
    from edgecraft.runner import run_plan

    recorder = Recorder()
    registry = build_registry(extra_plugins=[recorder])
    plan, base = load_plan(plan_file, registry)
    report = run_plan(plan, registry, base_dir=base, cache_dir=plan_file.parent / "cache")
    assert recorder.calls == [("run_started", ("hooks-demo", ["ort-cpu"])), ("target_finished", ("ort-cpu", False))]
    assert report.passed is False  # the size ratio cannot be met without a compression step


def test_mlflow_hook_is_inert_without_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    from edgecraft.plugins.mlflow import plugin as mlflow_plugin

    monkeypatch.delenv(mlflow_plugin.URI_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "mlflow", None)  # importing it would raise: it must not be imported
    mlflow_plugin.edgecraft_report_ready(report={"targets": []}, report_dir=None)


def test_mlflow_missing_is_a_plugin_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from edgecraft.errors import PluginError
    from edgecraft.plugins.mlflow import plugin as mlflow_plugin

    monkeypatch.setenv(mlflow_plugin.URI_ENV, f"file:{tmp_path / 'mlruns'}")
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(PluginError, match=r"mlflow is not installed.*\n  hint: pip install 'edgecraft\[mlflow\]'"):
        mlflow_plugin.edgecraft_report_ready(report={"targets": []}, report_dir=None)


@pytest.mark.slow
@pytest.mark.mlflow
@pytest.mark.reports
def test_cli_run_is_logged_to_a_local_mlflow_store(plan_file: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    store = tmp_path / "mlruns"
    monkeypatch.setenv("EDGECRAFT_MLFLOW_TRACKING_URI", f"file:{store}")
    monkeypatch.setenv("EDGECRAFT_MLFLOW_EXPERIMENT", "gate-tests")
    code = main(["run", str(plan_file), "--cache-dir", str(tmp_path / "cache"), "--report-dir",
                 str(tmp_path / "reports"), "-q"])
    assert code == 1  # the size contract fails; the run is logged all the same
    client = mlflow.tracking.MlflowClient(tracking_uri=f"file:{store}")
    experiment = client.get_experiment_by_name("gate-tests")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["plan_name"] == "hooks-demo" and run.data.params["targets.ort-cpu"] == "ort-cpu"
    assert run.data.params["latency.repeats"] == "40" and run.data.params["gate.inconclusive"] == "fail"
    assert run.data.metrics["ort-cpu.baseline.top1"] > 0.9
    assert run.data.metrics["ort-cpu.compressed.latency_p50_ms"] > 0
    assert run.data.metrics["ort-cpu.size_ratio"] == pytest.approx(1.0)
    assert run.data.tags["edgecraft.passed"] == "false" and run.data.tags["edgecraft.exit_code"] == "1"
    # MLflow keys allow few characters: '>=' becomes '__'
    assert run.data.tags["verdict.ort-cpu.size: size ratio __ 2x"].startswith("fail (passed=False)")
    reports = {a.path for a in client.list_artifacts(run.info.run_id, "reports")}
    assert reports == {"reports/report.json", "reports/junit.xml", "reports/summary.md", "reports/report.html"}
    shipped = {a.path for a in client.list_artifacts(run.info.run_id, "artifacts/ort-cpu")}
    assert "artifacts/ort-cpu/model.onnx" in shipped and "artifacts/ort-cpu/manifest.json" in shipped
