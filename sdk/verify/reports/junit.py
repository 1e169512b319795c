"""JUnit XML: one test case per contract per target, the format every CI system already displays.

Structure follows the common JUnit schema CI servers read (Jenkins, GitLab, GitHub test reporters):
``<testsuites>`` → one ``<testsuite>`` per target (``properties``, ``testcase``s, ``system-out``) →
``<testcase name classname time>`` with a ``<failure message type>`` (a failed contract, or an
inconclusive one counted as failed) or an ``<error>`` (inconclusive under ``gate.inconclusive: error``).
The failure message carries measured vs bound, the body the full detail.
"""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET
from pathlib import Path

from edgecraft.safe_text import clean_text
from edgecraft.verify.contracts import Verdict
from edgecraft.verify.report import Report, TargetError, TargetReport
from edgecraft.verify.reports.atomic import write_text_atomic
from edgecraft.verify.reports.resources_rows import resource_rows


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def _message(v: Verdict) -> str:
    ci = f", {100 * v.confidence:.0f}% CI [{_fmt(v.ci_low)}, {_fmt(v.ci_high)}]" if (
        v.ci_low is not None and v.ci_high is not None and v.confidence is not None) else ""
    return f"{v.status}: measured {_fmt(v.measured)} vs bound {_fmt(v.bound)} ({v.unit}{ci})"


def _outcome(v: Verdict, policy: str) -> str:
    """'pass', 'failure' or 'error' as JUnit sees it."""
    if v.status == "inconclusive" and not v.passed:
        return "error" if policy == "error" else "failure"
    return "pass" if v.passed else "failure"


def _suite(target: TargetReport, report: Report, policy: str) -> ET.Element:
    outcomes = [_outcome(v, policy) for v in target.contracts]
    suite = ET.Element("testsuite", {
        "name": f"edgecraft.{target.target}",
        "tests": str(len(target.contracts)),
        "failures": str(outcomes.count("failure")),
        "errors": str(outcomes.count("error")),
        "skipped": "0",
        "time": "0",
        "timestamp": report.created.rstrip("Z"),
        "hostname": socket.gethostname() or "localhost",
        "package": "edgecraft",
    })
    props = ET.SubElement(suite, "properties")
    for name, value in (("plan", report.plan), ("target_name", target.target_name), ("backend", target.backend),
                        ("artifact", target.artifact), ("emulated", str(target.emulated).lower()),
                        ("status", target.status or ("pass" if target.passed else "fail"))):
        ET.SubElement(props, "property", {"name": name, "value": str(value)})
    for side, m in (("baseline", target.baseline), ("compressed", target.compressed)):
        if m.memory is not None:
            ET.SubElement(props, "property", {"name": f"{side}_peak_memory_bytes",
                                              "value": str(m.memory.peak_bytes) if m.memory.measured else
                                              f"not measured: {m.memory.reason}"})
        if m.compute is not None:
            ET.SubElement(props, "property", {"name": f"{side}_macs", "value": str(m.compute.macs)})
            ET.SubElement(props, "property", {"name": f"{side}_int8_fraction",
                                              "value": f"{m.compute.int8_fraction:.4f}"})
    for verdict, outcome in zip(target.contracts, outcomes, strict=True):
        case = ET.SubElement(suite, "testcase", {"name": verdict.name, "classname": f"edgecraft.{target.target}."
                                                 f"{verdict.origin}.{verdict.kind}", "time": "0"})
        if outcome != "pass":
            kind = "Inconclusive" if verdict.status == "inconclusive" else "ContractFailed"
            element = ET.SubElement(case, outcome, {"message": _message(verdict), "type": kind})
            element.text = verdict.detail + (f"\n{verdict.note}" if verdict.note else "")
        elif verdict.note or verdict.status == "inconclusive":
            ET.SubElement(case, "system-out").text = f"{_message(verdict)}\n{verdict.detail}\n{verdict.note or ''}"
    out = ET.SubElement(suite, "system-out")
    out.text = (f"baseline {target.baseline.metrics} p50 {target.baseline.latency_ms.p50:.3f} ms "
                f"{target.baseline.size_bytes} B; compressed {target.compressed.metrics} p50 "
                f"{target.compressed.latency_ms.p50:.3f} ms {target.compressed.size_bytes} B")
    for label, base, comp, ratio in resource_rows(target):
        out.text += f"\n{label}: baseline {base}, compressed {comp}{' (' + ratio + ')' if ratio else ''}"
    return suite


def _errored(failed: TargetError) -> ET.Element:
    """A target that stopped with an error: one test case with an ``<error>``."""
    suite = ET.Element("testsuite", {"name": f"edgecraft.{failed.target}", "tests": "1", "failures": "0",
                                     "errors": "1", "skipped": "0", "time": "0", "package": "edgecraft"})
    case = ET.SubElement(suite, "testcase", {"name": f"build and measure {failed.target}",
                                             "classname": f"edgecraft.{failed.target}", "time": "0"})
    element = ET.SubElement(case, "error", {"message": failed.message.splitlines()[0][:500] if failed.message
                                            else failed.error, "type": failed.error})
    element.text = failed.message + (f"\nhint: {failed.hint}" if failed.hint else "") + f"\nexit {failed.exit_code}"
    return suite


def _integrations(report: Report) -> ET.Element:
    """One test case per failed lifecycle hook: an ``<error>`` (a best-effort plugin's: ``<skipped>``), so CI's
    test view shows the failure next to the verdicts, which stand."""
    errors = report.integration_errors
    suite = ET.Element("testsuite", {"name": "edgecraft.integrations", "tests": str(len(errors)),
                                     "failures": "0", "errors": str(sum(1 for e in errors if not e.best_effort)),
                                     "skipped": str(sum(1 for e in errors if e.best_effort)), "time": "0"})
    for e in errors:
        case = ET.SubElement(suite, "testcase", {"name": f"{e.plugin}.{e.hook}", "classname":
                                                 "edgecraft.integrations", "time": "0"})
        message = f"{e.plugin} ({e.distribution} {e.version}) raised in {e.hook}: {e.error}"
        ET.SubElement(case, "skipped" if e.best_effort else "error",
                      {"message": message, "type": "IntegrationError"}).text = message
    return suite


def junit_xml(report: Report) -> str:
    """The report as a JUnit XML document (a string, with the XML declaration)."""
    policy = (report.gate or {}).get("inconclusive", "fail")
    suites = [_suite(t, report, policy) for t in report.targets] + [_errored(e) for e in report.errored]
    if report.integration_errors:
        suites.append(_integrations(report))
    root = ET.Element("testsuites", {
        "name": f"edgecraft {report.plan_name}",
        "tests": str(sum(int(s.get("tests", "0")) for s in suites)),
        "failures": str(sum(int(s.get("failures", "0")) for s in suites)),
        "errors": str(sum(int(s.get("errors", "0")) for s in suites)),
        "skipped": str(sum(int(s.get("skipped", "0")) for s in suites)),
        "time": "0",
    })
    root.extend(suites)
    _clean_tree(root)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _clean_tree(root: ET.Element) -> None:
    """Escape control characters in every attribute and text: XML 1.0 cannot hold them even as
    character references, so one contract name with an ESC would make the whole file unparsable."""
    for element in root.iter():
        element.attrib = {k: clean_text(v) for k, v in element.attrib.items()}
        if element.text is not None:
            element.text = clean_text(element.text)
        if element.tail is not None:
            element.tail = clean_text(element.tail)


def write_junit(report: Report, path: Path) -> None:
    write_text_atomic(path, junit_xml(report))
