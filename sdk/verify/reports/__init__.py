"""Report renderers for CI: JUnit XML, a Markdown summary, and a self-contained HTML page with plots.

All of them render an :class:`edgecraft.verify.report.Report` (a finished run, or one read back from its
JSON with ``edgecraft report REPORT.json``), so they never re-measure anything.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from edgecraft.errors import EnvironmentFailure
from edgecraft.verify.report import Report, write_json_atomic
from edgecraft.verify.reports.atomic import write_text_atomic

__all__ = ["ReportFiles", "write_reports", "write_text_atomic"]


@dataclass
class ReportFiles:
    """Where to write each format (None: not written). ``report_dir`` fills every unset one."""

    json: Path | None = None
    junit: Path | None = None
    markdown: Path | None = None
    html: Path | None = None
    #: What was left out and why (printed by the CLI), e.g. the HTML page without matplotlib.
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_options(cls, *, report_dir: Path | None = None, json: Path | None = None, junit: Path | None = None,
                     markdown: Path | None = None, html: Path | None = None) -> ReportFiles:
        notes = []
        if report_dir is not None:
            json = json or report_dir / "report.json"
            junit = junit or report_dir / "junit.xml"
            markdown = markdown or report_dir / "summary.md"
            if html is None and importlib.util.find_spec("matplotlib") is None:
                # --report-dir asks for "every format this install can write"; --html asks for the page.
                notes.append(f"{report_dir / 'report.html'} not written: the HTML report needs matplotlib "
                             "(pip install 'edgecraft[reports]'); the other reports are written")
            else:
                html = html or report_dir / "report.html"
        return cls(json, junit, markdown, html, notes)

    def outputs(self) -> dict[str, Path | None]:
        """Every file this set writes, by the option that names it (``$GITHUB_STEP_SUMMARY`` is appended to)."""
        step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
        return {"--report-json": self.json, "--junit": self.junit, "--markdown": self.markdown, "--html": self.html,
                "$GITHUB_STEP_SUMMARY": Path(step_summary) if step_summary else None}

    def written(self) -> list[Path]:
        return [p for p in (self.json, self.junit, self.markdown, self.html) if p is not None]

    def check_available(self) -> None:
        """Fail before a run (exit 2) if a requested format cannot be rendered here."""
        if self.html is not None:
            from edgecraft.verify.reports.html import check_matplotlib

            check_matplotlib()


def write_reports(report: Report, files: ReportFiles) -> list[Path]:
    """Write every requested format; append the Markdown summary to ``$GITHUB_STEP_SUMMARY`` when set."""
    from edgecraft.verify.reports.junit import junit_xml
    from edgecraft.verify.reports.markdown import markdown_summary

    if files.json is not None:
        with _writing(files.json):
            write_json_atomic(files.json, report.to_json())
    if files.junit is not None:
        with _writing(files.junit):
            write_text_atomic(files.junit, junit_xml(report))
    summary = None
    if files.markdown is not None:
        summary = markdown_summary(report)
        with _writing(files.markdown):
            write_text_atomic(files.markdown, summary)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        summary = summary or markdown_summary(report)
        with _writing(Path(step_summary)), open(step_summary, "a", encoding="utf-8") as handle:
            handle.write(summary + "\n")
    if files.html is not None:
        from edgecraft.verify.reports.html import html_report

        page = html_report(report)
        with _writing(files.html):
            write_text_atomic(files.html, page)
    return files.written()


@contextmanager
def _writing(path: Path) -> Iterator[None]:
    """A failed write (disk full, read-only) is one line naming the report, not a traceback (exit 3)."""
    try:
        yield
    except OSError as exc:
        raise EnvironmentFailure(f"{path}: cannot write the report: {exc.strerror or type(exc).__name__} "
                                 "(no partial file was left)") from exc
