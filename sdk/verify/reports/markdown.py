"""A Markdown summary: the verdicts at a glance, for a pull request or ``$GITHUB_STEP_SUMMARY``."""

from __future__ import annotations

from edgecraft.safe_text import clean_text
from edgecraft.verify.contracts import Verdict
from edgecraft.verify.report import ReferenceMeasurement, Report, TargetReport
from edgecraft.verify.reports.resources_rows import resource_notes, resource_rows
from edgecraft.verify.resources import fmt_bytes, fmt_macs

ICON = {"pass": "✅", "fail": "❌", "inconclusive": "⚠️"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _ci(v: Verdict) -> str:
    if v.ci_low is None or v.ci_high is None or v.confidence is None:
        return ""
    return f"[{v.ci_low:.4g}, {v.ci_high:.4g}] ({100 * v.confidence:.0f}%)"


def _status(v: Verdict) -> str:
    if v.status == "inconclusive":
        return f"{ICON['inconclusive']} inconclusive → {'pass' if v.passed else 'fail'}"
    return f"{ICON[v.status]} {v.status}"


def _ref_resource(label: str, ref: ReferenceMeasurement) -> str:
    if label.startswith("peak memory") and ref.memory_bytes is not None:
        return fmt_bytes(ref.memory_bytes)
    if label.startswith("MACs") and ref.macs is not None:
        return fmt_macs(ref.macs)
    return "–"


def _target(t: TargetReport) -> list[str]:
    ref = t.reference
    head = ["", "baseline", "compressed"] + (["reference"] if ref is not None else [])
    lines = [f"### {ICON[t.status or ('pass' if t.passed else 'fail')]} `{t.target}` ({t.backend})"
             + (" — emulated device" if t.emulated else ""), "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, value in t.baseline.metrics.items():
        row = [name, f"{value:.4f}", f"{t.compressed.metrics.get(name, float('nan')):.4f}"]
        if ref is not None:
            row.append(f"{ref.metrics[name]:.4f}" if name in ref.metrics else "–")
        lines.append("| " + " | ".join(row) + " |")
    for pct in ("p50", "p95"):
        row = [f"latency {pct} (ms, wall clock)", f"{getattr(t.baseline.latency_ms, pct):.3f}",
               f"{getattr(t.compressed.latency_ms, pct):.3f}"]
        if ref is not None:
            row.append(f"{getattr(ref.latency_ms, pct):.3f}" if ref.latency_ms is not None else "–")
        lines.append("| " + " | ".join(row) + " |")
    row = ["size (bytes)", f"{t.baseline.size_bytes:,}", f"{t.compressed.size_bytes:,}"]
    if ref is not None:
        row.append(f"{ref.size_bytes:,}")
    lines.append("| " + " | ".join(row) + " |")
    for label, base, comp, ratio in resource_rows(t):
        row = [label, base, comp + (f" ({ratio})" if ratio else "")]
        if ref is not None:
            row.append(_ref_resource(label, ref))
        lines.append("| " + " | ".join(_cell(x) for x in row) + " |")
    notes = resource_notes(t)
    if notes:
        lines += [""] + [f"- {_cell(n)}" for n in notes]
    if ref is not None:
        lines += ["", f"Reference: `{ref.report}` — {_cell(ref.how)}."]
    for side, m in (("baseline", t.baseline), ("compressed", t.compressed)):
        if m.cache_rebuilt_reason:
            lines += ["", f"⚠ The cached {side} artifact was rebuilt: {_cell(m.cache_rebuilt_reason)}."]
    if t.contracts:
        lines += ["", "| contract | status | measured | bound | confidence interval | detail |",
                  "|---|---|---|---|---|---|"]
        for v in t.contracts:
            detail = v.detail + (f" — {v.note}" if v.note else "")
            lines.append(f"| {_cell(v.name)} | {_status(v)} | {v.measured:.4g} {_cell(v.unit)} | {v.bound:.4g} | "
                         f"{_ci(v)} | {_cell(detail)} |")
    if t.extra_rounds:
        lines += ["", f"{t.extra_rounds} extra latency round(s) were measured because a verdict was inconclusive."]
    timing = t.timing or {}
    if timing.get("rounds_discarded"):
        reasons = ", ".join(f"{n} {why}" for why, n in sorted(dict(timing.get("discard_reasons") or {}).items()))
        lines += ["", f"{timing['rounds_discarded']} of {timing.get('rounds')} latency round(s) were left out as "
                  f"disturbed ({reasons})."]
    return lines


def integration_section(report: Report) -> list[str]:
    """The "Integration errors" section (empty when every lifecycle hook ran cleanly)."""
    if not report.integration_errors:
        return []
    lines = ["### Integration errors", "",
             "Every verdict above stands; these lifecycle hooks raised"
             + (f" (exit code {report.exit_code})" if report.exit_code is not None else "") + ":", "",
             "| plugin | distribution | hook | error | best effort |", "|---|---|---|---|---|"]
    for e in report.integration_errors:
        lines.append(f"| {_cell(e.plugin)} | {_cell(e.distribution)} {_cell(e.version)} | `{e.hook}` | "
                     f"{_cell(e.error)} | {'yes' if e.best_effort else 'no'} |")
    return [*lines, ""]


def markdown_summary(report: Report) -> str:
    status = report.status or ("pass" if report.passed else "fail")
    word = {"pass": "PASSED", "fail": "FAILED", "inconclusive": "INCONCLUSIVE"}[status]
    if report.errored:
        word = f"ERROR ({len(report.errored)} target(s) stopped with an error)"
    if status == "inconclusive" and report.passed:
        word = "PASSED (with inconclusive verdicts)"
    if report.integration_errors and report.exit_code not in (None, 0, 1, 4):
        word += ", BUT AN INTEGRATION FAILED"
    verdicts = [v for t in report.targets for v in t.contracts]
    counts = {s: sum(1 for v in verdicts if v.status == s) for s in ("pass", "fail", "inconclusive")}
    lines = [f"## {ICON[status]} edgecraft `{report.plan_name}`: {word}", "",
             f"{len(verdicts)} verdict(s) on {len(report.targets)} target(s): {counts['pass']} passed, "
             f"{counts['fail']} failed, {counts['inconclusive']} inconclusive"
             + (f"; exit code {report.exit_code}" if report.exit_code is not None else "") + ".", ""]
    if report.gate:
        level = 100 * report.gate.get("confidence", 0.95)
        lines += [f"Latency verdicts hold {level:.0f}% overall confidence (bootstrap "
                  "intervals; each look of the sequential check at the stricter level its verdict shows); "
                  f"inconclusive counts as **{report.gate.get('inconclusive', 'fail')}**.", ""]
    for target in report.targets:
        lines += [*_target(target), ""]
    for failed in report.errored:  # not measured: the error it stopped with
        lines += [f"### ❌ `{failed.target}` ({failed.backend}): error, exit {failed.exit_code}", "",
                  f"{failed.error}: {_cell(failed.message)}"
                  + (f" — hint: {_cell(failed.hint)}" if failed.hint else ""), ""]
    lines += integration_section(report)
    lines.append(f"<sub>edgecraft {report.edgecraft_version}, plan `{report.plan}`, {report.created}</sub>")
    return clean_text("\n".join(lines) + "\n")  # no escape codes reach a CI page or terminal
