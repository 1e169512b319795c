"""How results look on the terminal: a run's tables and last line, sizes, and user text made inert."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

if TYPE_CHECKING:
    from edgecraft.verify.report import Report, TargetReport
    from rich.console import Console


def safe(text: object) -> str:
    """User or plugin text for the terminal: control characters escaped, rich markup inert."""
    from edgecraft.safe_text import clean_text
    from rich.markup import escape

    return escape(clean_text(text, keep_newlines=False))


def human(size: int) -> str:
    """A byte count as people read it: ``512 B``, ``1.5 KB``, ``2.0 GB``."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def print_report(out: Console, report: Report) -> None:
    """Per target: baseline vs compressed metrics, latency, size and resources, then the contracts' verdicts."""
    from edgecraft.verify.reports.resources_rows import resource_rows

    for target in report.targets:
        summary = Table(title=safe(f"{target.target} ({target.backend})")
                        + (" [EMULATED DEVICE]" if target.emulated else ""))
        for column in ("", "baseline", "compressed", "ratio"):
            summary.add_column(column, justify="right")
        for name, value in target.baseline.metrics.items():
            summary.add_row(safe(name), f"{value:.4f}", f"{target.compressed.metrics.get(name, float('nan')):.4f}", "")
        for row in latency_rows(target):
            summary.add_row(*row)
        summary.add_row("size (bytes)", str(target.baseline.size_bytes), str(target.compressed.size_bytes),
                        f"{target.baseline.size_bytes / max(target.compressed.size_bytes, 1):.2f}x")
        for row in resource_rows(target):  # peak memory and MACs, next to the size (issue 17)
            summary.add_row(*(safe(cell) for cell in row))
        out.print(summary)
        if target.contracts:
            verdicts = Table(title=safe(f"contracts on {target.target}"))
            for column in ("contract", "status", "measured", "bound", "detail"):
                verdicts.add_column(column)
            for v in target.contracts:
                color = {"pass": "green", "fail": "red", "inconclusive": "yellow"}[v.status]
                status = v.status if v.status != "inconclusive" else f"inconclusive→{'pass' if v.passed else 'fail'}"
                ci = f" [{v.ci_low:.4g}, {v.ci_high:.4g}]" if v.ci_low is not None and v.ci_high is not None else ""
                verdicts.add_row(safe(v.name), f"[{color}]{status}[/{color}]", f"{v.measured:.4g}{ci}",
                                 f"{v.bound:.4g}", safe(v.detail + (f" ({v.note})" if v.note else "")))
            out.print(verdicts)
        precision_note = (target.device or {}).get("precision_note")
        if precision_note:
            out.print(f"note: {target.target}: {precision_note}", highlight=False, markup=False)
    for failed in getattr(report, "errored", []):  # every target's outcome, the errored ones too
        hint = f" (hint: {failed.hint})" if failed.hint else ""
        head = f"{failed.target} ({failed.backend}): ERROR, exit {failed.exit_code}: {failed.error}: "
        out.print(f"[red]{safe(head + failed.message + hint)}[/red]")
    color = "green" if report.passed else "red"
    out.print(f"[{color}]{safe(summary_line(report))}[/{color}]")


def latency_rows(target: TargetReport) -> list[tuple[str, str, str, str]]:
    """One number per figure (issue 26): the ms columns are wall-clock percentiles of the timed calls; the ratio
    column shows a speedup only where a contract judged one, and then the verdict's own number and what it
    measured (CPU time when the wall clock was contended), never a second, different speedup. p50 without a
    speedup verdict shows the plain wall-clock ratio; tail percentiles no ratio (their ratios are noise on a shared
    machine), and p99 only when judged."""
    judged = {v.percentile: v for v in target.contracts
              if v.kind == "latency" and v.origin == "contract" and v.unit.startswith("speedup")}
    rows = []
    for pct in ("p50", "p95", "p99"):
        verdict = judged.get(pct)
        if pct == "p99" and verdict is None:
            continue
        bv, cv = getattr(target.baseline.latency_ms, pct), getattr(target.compressed.latency_ms, pct)
        if verdict is not None:
            basis = "CPU time" if (verdict.measured_as or "").startswith("CPU") else "wall clock"
            ratio = f"{verdict.measured:.2f}x ({basis}, judged)"
        else:
            ratio = f"{bv / cv:.2f}x" if pct == "p50" else ""
        rows.append((f"latency {pct} (ms, wall clock)", f"{bv:.3f}", f"{cv:.3f}", ratio))
    return rows


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def summary_line(report: Report) -> str:
    """The run's last line: how many contracts passed, failed and stayed inconclusive, on how many targets.

    The counts are the Markdown summary's (one per verdict), so a reader of either sees the same numbers:
    "FAILED: 1 of 6 contracts failed (5 passed) on 2 targets", never "FAILED: 6 contract(s)".
    """
    errored = list(getattr(report, "errored", []))
    if errored:
        measured = f"; {len(report.targets)} measured" if report.targets else ""
        return (f"ERROR: {_plural(len(errored), 'target')} stopped with an error "
                f"({', '.join(e.target for e in errored)}){measured}; exit code {report.exit_code}")
    verdicts = [v for t in report.targets for v in t.contracts]
    passed, failed, undecided = (sum(1 for v in verdicts if v.status == s) for s in ("pass", "fail", "inconclusive"))
    total, on = len(verdicts), f"on {_plural(len(report.targets), 'target')}"
    status = getattr(report, "status", None) or ("pass" if report.passed else "fail")
    contracts = "contract" if total == 1 else "contracts"
    if status == "inconclusive" and not report.passed:
        rest = ", ".join(p for p in (f"{passed} passed", f"{failed} failed" if failed else "") if p)
        return f"INCONCLUSIVE: {undecided} of {total} {contracts} inconclusive ({rest}) {on}"
    if not report.passed:
        rest = ", ".join(p for p in (f"{passed} passed", f"{undecided} inconclusive" if undecided else "") if p)
        return f"FAILED: {failed} of {total} {contracts} failed ({rest}) {on}"
    if not total:
        return f"PASSED: no contracts to judge {on}"
    note = f" ({undecided} inconclusive, counted as passed)" if undecided else ""
    return f"PASSED: {passed + undecided if undecided else passed} of {total} {contracts} passed{note} {on}"
