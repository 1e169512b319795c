"""The example third-party packages in integration/: pip-installed (a real wheel build, into a temporary
site folder), discovered only through entry points, and used end to end by a plan."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("example-strategy-plugin", "example-backend-plugin")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pip install both packages (no deps, no build isolation: offline) into a temporary site folder.

    The sources are copied first so the build leaves nothing behind in the repository."""
    root = tmp_path_factory.mktemp("third-party")
    sources = []
    for name in PACKAGES:
        shutil.copytree(REPO / "integration" / name, root / name, ignore=shutil.ignore_patterns("build", "*.egg-info"))
        sources.append(str(root / name))
    target = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "--target", str(target), *sources], check=True,
                   capture_output=True, text=True)
    return target


def edgecraft(site: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    env.pop("EDGECRAFT_PLUGINS", None)
    return subprocess.run([sys.executable, "-m", "edgecraft.cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd)


def test_plugins_lists_the_installed_third_party_packages(site: Path) -> None:
    result = edgecraft(site, "plugins", "--json")
    assert result.returncode == 0, result.stderr
    rows = {(r["kind"], r["name"]): r for r in json.loads(result.stdout)}
    assert rows[("strategy", "fp16-weights")]["distribution"] == "edgecraft-fp16-weights"
    assert rows[("backend", "onnx-reference")]["distribution"] == "edgecraft-onnx-reference"
    assert rows[("target", "onnx-reference")]["version"] == "0.1.0"
    # without the site folder, edgecraft knows nothing of them: registration is only by entry point
    # (unless this environment installed them too, as CI does)
    from importlib import metadata

    try:
        metadata.distribution("edgecraft-fp16-weights")
    except metadata.PackageNotFoundError:
        bare = subprocess.run([sys.executable, "-m", "edgecraft.cli", "plugins", "--json"], capture_output=True,
                              text=True)
        assert "fp16-weights" not in bare.stdout and "onnx-reference" not in bare.stdout


def _plan(tmp_path: Path, targets: list[object]) -> Path:
    for name in ("model.py", "digits_resnet.pt"):
        shutil.copy(REPO / "examples" / "digits" / name, tmp_path / name)
    plan = {
        "name": "third-party",
        # the legacy exporter: several times faster to export than dynamo, which keeps this test short
        "model": {"kind": "torch", "factory": "model.py:build", "input_shape": [1, 1, 32, 32],
                  "exporter": "torchscript"},
        "data": {"test": {"kind": "digits", "split": "test", "max_samples": 32}},
        "evaluation": {"dataset": "test", "metrics": ["top1", "cosine"]},
        "latency": {"warmup": 1, "repeats": 8, "rounds": 4},
        "steps": [{"strategy": "fp16-weights"}],
        "targets": targets,
        "contracts": [{"kind": "accuracy", "metric": "cosine", "max_drop": 1e-4}, {"kind": "size", "min_ratio": 1.9}],
        "gate": {"time_budget_s": 0},
    }
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def test_strategy_refuses_a_target_that_would_undo_it(site: Path, tmp_path: Path) -> None:
    plan = _plan(tmp_path, ["ort-cpu"])
    result = edgecraft(site, "compile", str(plan), "--target", "ort-cpu")
    assert result.returncode == 2
    assert "steps[0] (fp16-weights) on target 'ort-cpu'" in result.stderr
    assert "saved_optimization: disable" in result.stderr


@pytest.mark.slow
def test_plan_with_third_party_strategy_and_backend_runs_end_to_end(site: Path, tmp_path: Path) -> None:
    plan = _plan(tmp_path, ["onnx-reference", {"target": "ort-cpu", "options": {"saved_optimization": "disable"}}])
    report_path = tmp_path / "report.json"
    result = edgecraft(site, "run", str(plan), "-q", "--cache-dir", str(tmp_path / "cache"), "--report-json",
                       str(report_path))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(report_path.read_text())
    by_target = {t["target"]: t for t in report["targets"]}
    reference = by_target["onnx-reference"]
    assert reference["backend"] == "onnx-reference" and "ReferenceEvaluator" in reference["device"]["runtime"]
    for target in by_target.values():
        step = target["compressed"]["steps"][0]
        assert step["strategy"] == "fp16-weights" and step["converted"] > 10
        assert target["compressed"]["size_bytes"] < 0.55 * target["baseline"]["size_bytes"]
        assert target["compressed"]["metrics"]["cosine"] > 0.9999
        assert all(v["passed"] for v in target["contracts"])


@pytest.mark.parametrize("args", [["fp16-weights", "--target", "onnx-reference"], ["onnx-reference"]])
def test_example_packages_pass_the_conformance_kit(site: Path, args: list[str]) -> None:
    """What .ci/run checks too: both example packages conform, as pip installed them. The strategy is checked
    on the third-party target it is made for (named: by default the kit uses only the built-in targets,
    which all refuse it), so its apply() really runs."""
    result = edgecraft(site, "--strict-plugins", "plugin", "check", *args, "--all")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "conforms" in result.stdout
    assert "never exercised" not in result.stdout
    if args[0] == "fp16-weights":
        assert "ok      strategy 'fp16-weights': apply(): on onnx-reference" in result.stdout
