"""`edgecraft plugin new`: the generated packages install into a fresh venv, conform, run in a plan, and
the development loop rebuilds after an edit without a version bump."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml
from edgecraft.cli import main


def test_scaffold_writes_a_complete_package(tmp_path: Path) -> None:
    assert main(["plugin", "new", "strategy", "weight-clustering", str(tmp_path / "s")]) == 0
    root = tmp_path / "s"
    pyproject = (root / "pyproject.toml").read_text()
    assert '[project.entry-points.edgecraft]\nweight-clustering = "edgecraft_weight_clustering.plugin"' in pyproject
    strategy = (root / "src" / "edgecraft_weight_clustering" / "strategy.py").read_text()
    assert "class WeightClusteringParams(StrategyParams)" in strategy
    assert "assert_conforms" in (root / "tests" / "test_conformance.py").read_text()
    assert (root / "README.md").is_file()
    compile(strategy, "strategy.py", "exec")
    assert main(["plugin", "new", "strategy", "weight-clustering", str(root)]) == 2  # never overwrites
    assert main(["plugin", "new", "strategy", "Bad_Name", str(tmp_path / "x")]) == 2
    assert main(["plugin", "new", "backend", "ort-basic", str(tmp_path / "b")]) == 0
    assert "class OrtBasicOptions(TargetOptions)" in (tmp_path / "b" / "src" / "edgecraft_ort_basic" /
                                                      "backend.py").read_text()


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A fresh venv (system site packages, plus this interpreter's site so edgecraft is importable) with both
    scaffolds pip installed editable (no deps, no build isolation: offline)."""
    root = tmp_path_factory.mktemp("scaffold")
    for kind, name in (("strategy", "weight-clustering"), ("backend", "ort-basic")):
        assert main(["plugin", "new", kind, name, str(root / name)]) == 0
    env_dir = root / "venv"
    # Without pip of its own: the venv then uses the system's pip and (recent) setuptools, whose editable
    # builds need no `wheel` package; a venv's bundled setuptools would shadow them and fail offline.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(env_dir)],
                   check=True)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    parent = sysconfig.get_paths()["purelib"]
    Path(purelib, "_edgecraft_parent_site.pth").write_text(f"import site; site.addsitedir({parent!r})\n")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "-e", str(root / "weight-clustering"), "-e",
                    str(root / "ort-basic")], check=True, capture_output=True, text=True)
    return python, root


def _edgecraft(python: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("EDGECRAFT_PLUGINS", "PYTHONPATH")}
    return subprocess.run([str(python), "-m", "edgecraft.cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd)


@pytest.mark.slow
def test_generated_packages_install_conform_and_run_in_a_plan(venv: tuple[Path, Path], tmp_path: Path) -> None:
    python, root = venv
    listed = _edgecraft(python, "--strict-plugins", "plugins", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {(r["kind"], r["name"]): r for r in json.loads(listed.stdout)}
    assert rows[("strategy", "weight-clustering")]["distribution"] == "edgecraft-weight-clustering"
    assert rows[("target", "ort-basic")]["distribution"] == "edgecraft-ort-basic"

    for name, args in (("ort-basic", ()), ("weight-clustering", ("--target", "ort-basic", "--target", "ort-cpu"))):
        checked = _edgecraft(python, "--strict-plugins", "plugin", "check", name, *args)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    tests = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=root / "ort-basic",
                           capture_output=True, text=True)
    assert tests.returncode == 0, tests.stdout + tests.stderr

    # a plan using both; then the development loop: edit the strategy without a version bump
    from edgecraft.testing.models import CNN

    CNN.write_dataset(tmp_path / "kit.npz", samples=16)
    plan = {"name": "scaffolded", "model": dict(CNN.source), "data": {"kit": {"kind": "npz", "path": "kit.npz"}},
            "evaluation": {"dataset": "kit", "metrics": ["top1"]},
            "latency": {"warmup": 1, "repeats": 5, "rounds": 1},
            "steps": [{"strategy": "weight-clustering"}], "targets": [{"target": "ort-basic"}],
            "contracts": [{"kind": "accuracy", "metric": "top1", "max_drop": 0.0}], "gate": {"time_budget_s": 0}}
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan))
    cache = tmp_path / "cache"

    def run(*extra: str) -> dict:
        result = _edgecraft(python, "run", "plan.yaml", "--cache-dir", str(cache), "--report-json", "r.json", "-q",
                            *extra, cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "PASSED: 1 of 1 contract passed on 1 target" in result.stdout
        return json.loads((tmp_path / "r.json").read_text())["targets"][0]["compressed"]

    first = run()
    assert first["cached"] is False and first["steps"][0]["nodes"] > 0
    assert run()["cached"] is True
    source = root / "weight-clustering" / "src" / "edgecraft_weight_clustering" / "strategy.py"
    source.write_text(source.read_text().replace('"nodes": len(graph_model.graph.node)',
                                                 '"nodes": len(graph_model.graph.node), "edited": True'))
    edited = run()
    assert edited["cached"] is False and edited["steps"][0]["edited"] is True  # never the stale artifact
    assert run()["cached"] is True
    assert run("--no-cache")["cached"] is False
    info = _edgecraft(python, "cache", "info", "--cache-dir", str(cache), "--json")
    # one baseline (it runs no step, so the strategy's source hash is not in its key) and two compressed
    # builds (the compiled plan's versions name the strategy's source hash); --no-cache replaced entries
    assert json.loads(info.stdout)["entries"] == 3
