"""What a failing integration (lifecycle) hook does to the verdict and the reports (docs/release-gating.md, "When
an integration fails"): the verdicts stand, every report is written with an ``integration_errors`` section naming
the plugin, the hook and the exception, and a run whose contracts all passed exits 5, never 0 and never 3;
a plugin named in EDGECRAFT_BEST_EFFORT_PLUGINS is reported but leaves the exit code alone."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
from edgecraft.cli import main
from edgecraft.errors import EXIT_CONTRACT_FAILED, EXIT_INTEGRATION_FAILED, EXIT_OK
from edgecraft.settings import BEST_EFFORT_ENV

TRACKER = """
    import os
    from edgecraft.hookspecs import hookimpl

    @hookimpl
    def edgecraft_run_started(plan, targets):
        if os.environ.get("FAKEPLUG_FAIL") == "run_started":
            raise ConnectionError("tracking server unreachable at start")

    @hookimpl
    def edgecraft_target_finished(target):
        if os.environ.get("FAKEPLUG_FAIL") == "target_finished":
            raise ValueError("cannot log target " + target["target"])
        target["contracts"].clear()  # a careless integration: must not reach the report or the next integration

    @hookimpl
    def edgecraft_report_ready(report, report_dir):
        if os.environ.get("FAKEPLUG_FAIL") == "report_ready":
            raise ConnectionError("tracking server unreachable")
        report["targets"].clear()
"""


@pytest.fixture
def tracker(fake_dist: Callable[..., None]) -> None:
    fake_dist("fakeplug-tracker", "fakeplug_tracker", TRACKER, entry_point="tracker")


def run(tmp_path: Path, *, max_bytes: int = 10**9) -> tuple[int, Path]:
    plan = tmp_path / "plan.yaml"
    plan.write_text("model: {kind: torch, factory: 'edgecraft.testing.models:tiny_cnn', input_shape: [1, 1, 8, 8]}\n"
                    f"targets: [ort-cpu]\ncontracts: [{{kind: size, max_bytes: {max_bytes}}}]\n")
    reports = tmp_path / "reports"
    code = main(["run", str(plan), "--cache-dir", str(tmp_path / "cache"), "-q", "--report-dir", str(reports),
                 "--junit", str(reports / "junit.xml")])
    return code, reports


@pytest.mark.parametrize("hook", ["run_started", "target_finished", "report_ready"])
def test_a_raising_hook_after_passing_contracts_exits_5_with_every_report_written(
        tracker: None, tmp_path: Path, hook: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FAKEPLUG_FAIL", hook)
    code, reports = run(tmp_path)
    assert code == EXIT_INTEGRATION_FAILED == 5
    err = " ".join(capsys.readouterr().err.split())
    assert f"integration 'tracker' (fakeplug-tracker 1.0) failed in edgecraft_{hook}" in err
    document = json.loads((reports / "report.json").read_text())
    assert document["passed"] is True and document["status"] == "pass" and document["exit_code"] == 5
    assert [v["status"] for t in document["targets"] for v in t["contracts"]] == ["pass"]  # the verdict stands
    (error,) = document["integration_errors"]
    assert error["plugin"] == "tracker" and error["distribution"] == "fakeplug-tracker"
    assert error["hook"] == f"edgecraft_{hook}" and "Error: " in error["error"] and not error["best_effort"]
    import xmlschema

    xmlschema.XMLSchema(str(Path(__file__).parents[1] / "core" / "junit.xsd")).validate(str(reports / "junit.xml"))
    suites = {s.get("name"): s for s in ET.parse(reports / "junit.xml").getroot()}
    assert suites["edgecraft.integrations"].get("errors") == "1"
    assert suites["edgecraft.integrations"].find("testcase/error").get("type") == "IntegrationError"
    summary = (reports / "summary.md").read_text()
    assert "### Integration errors" in summary and f"`edgecraft_{hook}`" in summary
    assert "Integration errors" in (reports / "report.html").read_text()


def test_a_best_effort_integration_is_reported_but_keeps_exit_0(tracker: None, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FAKEPLUG_FAIL", "report_ready")
    monkeypatch.setenv(BEST_EFFORT_ENV, "fakeplug-tracker:tracker")
    code, reports = run(tmp_path)
    assert code == EXIT_OK
    assert "warning (best effort): integration 'tracker'" in " ".join(capsys.readouterr().err.split())
    document = json.loads((reports / "report.json").read_text())
    assert document["exit_code"] == 0 and document["integration_errors"][0]["best_effort"] is True
    suite = next(s for s in ET.parse(reports / "junit.xml").getroot() if s.get("name") == "edgecraft.integrations")
    assert suite.get("errors") == "0" and suite.get("skipped") == "1"


def test_a_failing_contract_keeps_exit_1_and_the_hook_failure_is_reported(tracker: None, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKEPLUG_FAIL", "report_ready")
    code, reports = run(tmp_path, max_bytes=1)
    assert code == EXIT_CONTRACT_FAILED
    document = json.loads((reports / "report.json").read_text())
    assert document["exit_code"] == 1 and document["integration_errors"][0]["hook"] == "edgecraft_report_ready"


def test_a_hook_editing_its_arguments_changes_neither_the_report_nor_the_verdict(
        tracker: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FAKEPLUG_FAIL", raising=False)
    code, reports = run(tmp_path)  # the tracker clears target["contracts"] and report["targets"] in its hooks
    assert code == EXIT_OK
    document = json.loads((reports / "report.json").read_text())
    assert document["integration_errors"] == [] and len(document["targets"][0]["contracts"]) == 1


def test_run_plan_records_hook_failures_in_the_report(tracker: None, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The library path (no CLI): the Report carries the failures and the exit code."""
    from edgecraft.registry import build_registry
    from edgecraft.runner import run_plan

    monkeypatch.setenv("FAKEPLUG_FAIL", "target_finished")
    plan = {"model": {"kind": "torch", "factory": "edgecraft.testing.models:tiny_cnn", "input_shape": [1, 1, 8, 8]},
            "targets": ["ort-cpu"], "contracts": [{"kind": "size", "max_bytes": 10**9}]}
    report = run_plan(plan, build_registry(), base_dir=tmp_path, cache_dir=tmp_path / "cache")
    assert report.passed and report.exit_code == 5
    assert [(e.plugin, e.hook) for e in report.integration_errors] == [("tracker", "edgecraft_target_finished")]
    assert "ValueError: cannot log target ort-cpu" in report.integration_errors[0].error


def test_the_supervisor_passes_exit_5_through_and_keeps_the_reports(tmp_path: Path) -> None:
    from edgecraft.supervise import decide

    report = tmp_path / "report.json"
    report.write_text("{}")
    assert decide(5, [{"pending": True}, {"reports": [str(report)]}, {"verdict": 5}]) == 5
    assert report.exists()


@pytest.mark.slow
def test_a_supervised_run_exits_5_and_keeps_its_reports(tracker: None, tmp_path: Path) -> None:
    """Through the supervising parent (the `edgecraft` console script): the verdict record says 5, the reports
    the child wrote stay (sdk/supervise.py removes them only when no verdict was recorded)."""
    import os
    import subprocess
    import sys

    plan = tmp_path / "plan.yaml"
    plan.write_text("model: {kind: torch, factory: 'edgecraft.testing.models:tiny_cnn', input_shape: [1, 1, 8, 8]}\n"
                    "targets: [ort-cpu]\ncontracts: [{kind: size, max_bytes: 1000000000}]\n")
    env = {**os.environ, "FAKEPLUG_FAIL": "report_ready",
           "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")])}
    for name in ("EDGECRAFT_SUPERVISE", "EDGECRAFT_PLUGINS"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-c", "from edgecraft.supervise import console_main; console_main()",
                           "run", str(plan), "--cache-dir", str(tmp_path / "cache"), "-q", "--report-dir",
                           str(tmp_path / "reports")], env=env, text=True, capture_output=True, timeout=300)
    assert done.returncode == 5, done.stderr
    assert "failed in edgecraft_report_ready" in " ".join(done.stderr.split())
    document = json.loads((tmp_path / "reports" / "report.json").read_text())
    assert document["exit_code"] == 5 and document["integration_errors"][0]["plugin"] == "tracker"
