"""Report renderers for CI: JUnit XML, a Markdown summary, and a self-contained HTML page with plots.

All of them render an :class:`edgecraft.verify.report.Report` (a finished run, or one read back from its
JSON with ``edgecraft report REPORT.json``), so they never re-measure anything.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from edgecraft.errors import EnvironmentFailure
from edgecraft.verify.report import Report
from edgecraft.verify.reports.atomic import stage_text, write_text_atomic

__all__ = ["ReportFiles", "remove_reports", "write_reports", "write_set", "write_text_atomic"]


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


def write_reports(report: Report, files: ReportFiles, *, step_summary: bool = True) -> list[Path]:
    """Write every requested format as one set; append the Markdown summary to ``$GITHUB_STEP_SUMMARY``.

    Why a set: reports that disagree with the exit code lie to CI. Every format is rendered first (a
    renderer's failure touches no file), written to a temporary file next to its destination, and only
    then are all renamed into place; if a write or a rename fails, the temporary files and the reports
    already renamed are removed, so a failed set leaves no report behind (exit 3 names the file).
    ``step_summary=False``: the set is written again (integration errors added), the summary already appended.
    """
    import json

    from edgecraft.verify.reports.junit import junit_xml
    from edgecraft.verify.reports.markdown import markdown_summary

    texts: dict[Path, str] = {}
    if files.json is not None:
        texts[files.json] = json.dumps(report.to_json(), indent=2)
    if files.junit is not None:
        texts[files.junit] = junit_xml(report)
    append = os.environ.get("GITHUB_STEP_SUMMARY") if step_summary else None
    summary = markdown_summary(report) if files.markdown is not None or append else None
    if files.markdown is not None and summary is not None:
        texts[files.markdown] = summary
    if files.html is not None:
        from edgecraft.verify.reports.html import html_report

        texts[files.html] = html_report(report)
    write_set(texts)
    if append and summary is not None:
        try:
            with _writing(Path(append)), open(append, "a", encoding="utf-8") as handle:
                handle.write(summary + "\n")
        except BaseException:
            remove_reports(list(texts))
            raise
    return files.written()


def write_set(texts: dict[Path, str]) -> None:
    """Write every file through a temporary one, then rename them all; on any failure remove them all."""
    staged: dict[Path, str] = {}
    renamed: list[Path] = []
    try:
        for path, text in texts.items():
            with _writing(path):
                staged[path] = stage_text(path, text)
        for path, tmp in staged.items():
            with _writing(path):
                os.replace(tmp, path)
            renamed.append(path)
    except BaseException:
        remove_reports(renamed)
        raise
    finally:
        for tmp in staged.values():
            if os.path.exists(tmp):
                os.unlink(tmp)


def remove_reports(paths: list[Path]) -> None:
    """Remove reports that no longer tell the run's outcome (best effort: a vanished file is fine)."""
    for path in paths:
        with suppress(OSError):
            Path(path).unlink(missing_ok=True)


@contextmanager
def _writing(path: Path) -> Iterator[None]:
    """A failed write (disk full, read-only) is one line naming the report, not a traceback (exit 3)."""
    try:
        yield
    except OSError as exc:
        raise EnvironmentFailure(f"{path}: cannot write the report: {exc.strerror or type(exc).__name__} "
                                 "(no partial file was left)") from exc
