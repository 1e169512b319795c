"""Reports for CI: JUnit XML validates and counts right, Markdown (and $GITHUB_STEP_SUMMARY), HTML with plots."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from edgecraft.cli import main
from edgecraft.verify.contracts import Verdict
from edgecraft.verify.report import LatencyReport, MeasurementReport, ReferenceMeasurement, Report, TargetReport
from edgecraft.verify.reports import ReportFiles, write_reports
from edgecraft.verify.reports.junit import junit_xml
from edgecraft.verify.reports.markdown import markdown_summary

XSD = Path(__file__).with_name("junit.xsd")


def _lat(p50: float) -> LatencyReport:
    return LatencyReport(p50=p50, p95=p50 * 1.3, p99=p50 * 1.6, mean=p50 * 1.1, min=p50 * 0.9, n=20,
                         samples=[p50] * 20, rounds=4)


def _verdict(name: str, kind: str, status: str, passed: bool, **extra: object) -> Verdict:
    base = {"measured": 1.0, "bound": 2.0, "unit": "u", "detail": f"{name} detail"}
    base.update(extra)
    return Verdict(name=name, kind=kind, status=status, passed=passed, **base)


def make_report(policy: str = "fail") -> Report:
    """Two targets: one all-pass, one with a failed accuracy contract, a failed size bound vs the reference
    and an inconclusive latency verdict counted per ``policy``."""
    def target(label: str, verdicts: list[Verdict], reference: bool) -> TargetReport:
        return TargetReport(
            target=label, target_name="ort-cpu", backend="onnxruntime", passed=all(v.passed for v in verdicts),
            baseline=MeasurementReport(metrics={"top1": 0.99}, latency_ms=_lat(0.6), size_bytes=1_200_000,
                                       artifact="/a/b", cached=True),
            compressed=MeasurementReport(metrics={"top1": 0.95}, latency_ms=_lat(0.3), size_bytes=320_000,
                                         artifact="/a/c", cached=False),
            contracts=verdicts, artifact="/a/c", compiled_key="k",
            status="fail" if any(v.status == "fail" for v in verdicts) else "pass",
            reference=ReferenceMeasurement(report="ref.json", artifact="/a/r", remeasured=True, how="re-measured",
                                           metrics={"top1": 0.97}, latency_ms=_lat(0.28), size_bytes=300_000)
            if reference else None)

    good = target("ort-a", [
        _verdict("accuracy: top1 drop <= 0.05", "accuracy", "pass", True, metric="top1", unit="top1 drop",
                 measured=0.04, bound=0.05),
        _verdict("latency: p50 <= 1 ms", "latency", "pass", True, unit="ms (p50)", percentile="p50",
                 measured=0.3, bound=1.0, ci_low=0.28, ci_high=0.33, confidence=0.95),
    ], reference=False)
    inconclusive_passed = policy == "pass"
    bad = target("ort-b", [
        _verdict("accuracy: top1 drop <= 0.01", "accuracy", "fail", False, metric="top1", unit="top1 drop",
                 measured=0.04, bound=0.01),
        _verdict("size: size ratio >= 3x", "size", "pass", True, unit="size ratio", measured=3.75, bound=3.0),
        _verdict("reference: p50 latency regression <= 5%", "latency", "inconclusive", inconclusive_passed,
                 origin="reference", unit="% p50 latency vs reference", percentile="p50", measured=4.0, bound=5.0,
                 ci_low=1.0, ci_high=8.0, confidence=0.95, note=f"still inconclusive: counted per {policy}"),
        _verdict("reference: size growth <= 0%", "size", "fail", False, origin="reference",
                 unit="% size vs reference", measured=6.7, bound=0.0),
    ], reference=True)
    return Report(passed=False, plan="plan.yaml", plan_name="demo <&> plan", edgecraft_version="0.1.0",
                  created="2026-11-22T12:00:00Z", evaluation_dataset="test", targets=[good, bad], status="fail",
                  exit_code=1, gate={"confidence": 0.95, "inconclusive": policy})


@pytest.mark.parametrize("policy,failures,errors", [("fail", 3, 0), ("error", 2, 1), ("pass", 2, 0)])
@pytest.mark.dev
def test_junit_validates_and_counts(policy: str, failures: int, errors: int) -> None:
    import xmlschema

    text = junit_xml(make_report(policy))
    xmlschema.XMLSchema(str(XSD)).validate(text)
    root = ET.fromstring(text)
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("6", str(failures), str(errors))
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["edgecraft.ort-a", "edgecraft.ort-b"]
    assert suites[0].get("failures") == "0" and suites[0].get("tests") == "2"
    cases = suites[1].findall("testcase")
    assert len(cases) == 4  # one test case per contract per target
    failed = {c.get("name"): c.find("failure") for c in cases}
    acc = failed["accuracy: top1 drop <= 0.01"]
    assert acc is not None and "measured 0.04 vs bound 0.01" in acc.get("message")
    assert acc.text.startswith("accuracy: top1 drop <= 0.01 detail")
    assert failed["size: size ratio >= 3x"] is None
    inconclusive = next(c for c in cases if "regression" in c.get("name"))
    if policy == "fail":
        assert inconclusive.find("failure").get("type") == "Inconclusive"
    elif policy == "error":
        assert inconclusive.find("error") is not None
    else:
        assert inconclusive.find("failure") is None and "inconclusive" in inconclusive.find("system-out").text
    # the suites' counts add up to the header's
    assert sum(int(s.get("failures")) for s in suites) == failures


@pytest.mark.reports
def test_markdown_summary_and_github_step_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary_file = tmp_path / "step_summary.md"
    summary_file.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary_file))
    report = make_report()
    written = write_reports(report, ReportFiles.from_options(report_dir=tmp_path / "out"))
    assert [p.name for p in written] == ["report.json", "junit.xml", "summary.md", "report.html"]
    md = (tmp_path / "out" / "summary.md").read_text()
    assert md.startswith("## ❌ edgecraft `demo <&> plan`: FAILED")
    assert "| accuracy: top1 drop <= 0.01 | ❌ fail | 0.04 top1 drop | 0.01 |" in md
    assert "⚠️ inconclusive → fail" in md and "[1, 8] (95%)" in md
    assert "| top1 | 0.9900 | 0.9500 | 0.9700 |" in md  # baseline, compressed, reference columns
    step = summary_file.read_text()
    assert step.startswith("earlier step\n") and md in step  # appended, not overwritten
    assert json.loads((tmp_path / "out" / "report.json").read_text())["schema"] == "edgecraft.report/v1"


@pytest.mark.reports
def test_html_is_self_contained_with_plots_and_bounds() -> None:
    from edgecraft.verify.reports.html import html_report

    page = html_report(make_report())
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 2  # one figure per target
    assert "<script" not in page and "src=" not in page and "<link" not in page  # nothing external
    # bounds drawn with their labels: accuracy vs baseline, latency ceiling, size ratio, reference bounds
    for label in ("top1 ≥ baseline − 0.05", "p50 ≤ 1 ms", "ratio ≥ 3x", "≤ reference +0%", "p50 ≤ reference +5%",
                  "top1 ≥ baseline − 0.01"):
        assert label in page, label
    assert "demo &lt;&amp;&gt; plan" in page


def test_report_command_renders_existing_json(tmp_path: Path) -> None:
    source = tmp_path / "report.json"
    source.write_text(json.dumps(make_report().to_json()))
    code = main(["report", str(source), "--junit", str(tmp_path / "j.xml"), "--markdown", str(tmp_path / "s.md")])
    assert code == 1  # the report's own exit code
    assert ET.parse(tmp_path / "j.xml").getroot().get("failures") == "3"
    assert (tmp_path / "s.md").read_text().startswith("## ❌")


def test_report_command_rejects_other_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "report.json"
    source.write_text(json.dumps({**make_report().to_json(), "schema": "edgecraft.report/v2"}))
    assert main(["report", str(source), "--junit", str(tmp_path / "j.xml")]) == 2
    assert "'edgecraft.report/v2' is not 'edgecraft.report/v1'" in capsys.readouterr().err
    assert not (tmp_path / "j.xml").exists()


def test_old_v1_report_without_gate_fields_still_loads(tmp_path: Path) -> None:
    """Backward compatibility: a v1 report written before gating (no status, CI, reference) renders."""
    doc = make_report().to_json()
    for key in ("status", "exit_code", "gate", "reference_report"):
        doc.pop(key)
    for t in doc["targets"]:
        for key in ("status", "reference", "extra_rounds"):
            t.pop(key)
        for v in t["contracts"]:
            for key in ("origin", "ci_low", "ci_high", "confidence", "samples", "note", "metric", "percentile"):
                v.pop(key)
    (tmp_path / "old.json").write_text(json.dumps(doc))
    report = Report.load(tmp_path / "old.json")
    assert "testsuites" in junit_xml(report) and markdown_summary(report).startswith("## ❌")
