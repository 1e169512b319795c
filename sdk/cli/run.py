"""``run``, ``gate`` and ``report``: judge a plan (or render a judged report) and exit with the verdict."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from edgecraft.cli.app import app
from edgecraft.cli.guards import ALLOW_NO_CONTRACTS, plan_inputs, refuse_clobbering, require_a_verdict
from edgecraft.cli.options import (
    AllowNoContractsOpt,
    CacheOpt,
    HtmlOpt,
    JunitOpt,
    MarkdownOpt,
    NoCacheOpt,
    PlanArg,
    QuietOpt,
    RayOpt,
    ReferenceOpt,
    ReportDirOpt,
    ReportJson,
    TargetOpt,
)
from edgecraft.cli.output import print_report
from edgecraft.cli.session import CliSession
from edgecraft.errors import EXIT_CONTRACT_FAILED, EXIT_OK

if TYPE_CHECKING:
    from edgecraft.registry import Registry
    from edgecraft.verify.report import Report
    from edgecraft.verify.reports import ReportFiles


@app.command()
def run(ctx: typer.Context, plan: PlanArg, target: TargetOpt = None, report_json: ReportJson = None,
        cache_dir: CacheOpt = None, quiet: QuietOpt = False, reference: ReferenceOpt = None, junit: JunitOpt = None,
        markdown: MarkdownOpt = None, html: HtmlOpt = None, report_dir: ReportDirOpt = None,
        no_cache: NoCacheOpt = False, ray: RayOpt = None, allow_no_contracts: AllowNoContractsOpt = False) -> None:
    """Compile, build, measure and judge the plan; exit 1 if a contract fails (4: undecided, if the plan says so)."""
    from edgecraft.verify.reports import ReportFiles

    files = ReportFiles.from_options(report_dir=report_dir, json=report_json, junit=junit, markdown=markdown,
                                     html=html)
    _run_and_report(CliSession.of(ctx), plan, target, reference, cache_dir, quiet, files, no_cache, ray,
                    allow_no_contracts)


@app.command()
def gate(ctx: typer.Context, plan: PlanArg,
         reference: Annotated[Path, typer.Option("--reference", help="JSON report of the last released artifact.")],
         target: TargetOpt = None, report_json: ReportJson = None, cache_dir: CacheOpt = None, quiet: QuietOpt = False,
         junit: JunitOpt = None, markdown: MarkdownOpt = None, html: HtmlOpt = None,
         report_dir: ReportDirOpt = None, no_cache: NoCacheOpt = False, ray: RayOpt = None,
         allow_no_contracts: AllowNoContractsOpt = False) -> None:
    """Release gate: `run` with a reference report required (the plan's gate.reference bounds apply)."""
    from edgecraft.verify.reports import ReportFiles

    files = ReportFiles.from_options(report_dir=report_dir, json=report_json, junit=junit, markdown=markdown,
                                     html=html)
    _run_and_report(CliSession.of(ctx), plan, target, reference, cache_dir, quiet, files, no_cache, ray,
                    allow_no_contracts)


@app.command()
def report(ctx: typer.Context,
           source: Annotated[Path, typer.Argument(help="A JSON report written by --report-json.")],
           junit: JunitOpt = None, markdown: MarkdownOpt = None, html: HtmlOpt = None,
           report_dir: ReportDirOpt = None) -> None:
    """Render an existing JSON report as JUnit XML, Markdown and/or HTML; exits with the report's exit code."""
    from edgecraft.preflight import preflight_reports
    from edgecraft.verify.report import Report as ReportModel
    from edgecraft.verify.reports import ReportFiles

    session = CliSession.of(ctx)
    files = ReportFiles.from_options(report_dir=report_dir, junit=junit, markdown=markdown, html=html)
    if report_dir is not None:
        files.json = None  # never overwrite the source with itself
    refuse_clobbering({"the source report": source}, files.outputs())
    files.check_available()
    preflight_reports(files)
    for note in files.notes:
        session.err.print(f"note: {note}", highlight=False, markup=False)
    finish(session, ReportModel.load(source), files, None)


def _run_and_report(session: CliSession, plan: Path, target: list[str] | None, reference: Path | None,
                    cache_option: Path | None, quiet: bool, files: ReportFiles, no_cache: bool,
                    ray: str | None, allow_no_contracts: bool) -> None:
    from edgecraft.execute import executor_for
    from edgecraft.logging_setup import quiet_runtimes
    from edgecraft.plan.loading import load_plan
    from edgecraft.preflight import preflight_run
    from edgecraft.progress import NullProgress
    from edgecraft.rich_progress import RichProgress
    from edgecraft.runner import run_plan
    from edgecraft.verify.gate import ReferenceReport

    session.verdict_pending = True
    refuse_clobbering({"the plan": plan, "--reference": reference}, files.outputs())
    files.check_available()
    for note in files.notes:
        session.err.print(f"note: {note}", highlight=False, markup=False)
    executor = executor_for(ray)  # --ray without the extra: exit 2 before anything else
    registry = session.registry()
    quiet_runtimes()
    loaded, base_dir = load_plan(plan, registry)
    require_a_verdict(loaded, target, reference, allow_no_contracts)
    refuse_clobbering({"the plan": plan, "--reference": reference, **plan_inputs(loaded, base_dir)}, files.outputs())
    ref = ReferenceReport.load(reference) if reference is not None else None
    cache_dir = session.cache_dir(cache_option)
    preflight_run(files, cache_dir)
    progress = NullProgress() if quiet else RichProgress(session.err)
    with progress if isinstance(progress, RichProgress) else contextlib.nullcontext():
        report = run_plan(loaded, registry, base_dir=base_dir, targets=target or None, cache_dir=cache_dir,
                          progress=progress, plan_path=str(plan), reference=ref, no_cache=no_cache,
                          executor=executor)
    for failed in report.errored:  # as an error would read without the report: CI logs and grep see the message
        import sys

        from edgecraft.safe_text import clean_text

        hint = f"\n  hint: {failed.hint}" if failed.hint else ""
        sys.stderr.write(f"error ({failed.error}): target {clean_text(failed.target)!r}: "
                         f"{clean_text(failed.message + hint)}\n")
    if not allow_no_contracts and not report.errored and not any(t.contracts for t in report.targets):
        from edgecraft.errors import RuntimeFailure  # the check above makes this a bug, never a verdict

        raise RuntimeFailure("the run judged no contract (a plugin or executor dropped every verdict); exit 3, "
                             f"not a verdict; pass {ALLOW_NO_CONTRACTS} to accept a run without one")
    finish(session, report, files, registry)


def finish(session: CliSession, report: Report, files: ReportFiles, registry: Registry | None) -> NoReturn:
    """Write the reports, tell integrations, print the tables, and exit with the report's code.

    The reports are written as one set (:func:`~edgecraft.verify.reports.write_reports`). An
    ``edgecraft_report_ready`` hook that raises does not lose them: the set is written again with the failure in
    ``integration_errors`` (exit 5 if every contract passed, see :data:`~edgecraft.errors.EXIT_INTEGRATION_FAILED`).
    If anything else fails after the first write (a broken terminal, Ctrl-C), they are removed before the
    error's exit code: a passing report behind an exit 3 would contradict it.
    """
    from edgecraft.verify.reports import remove_reports, write_reports

    written = write_reports(report, files)
    session.record({"reports": [str(p) for p in written]})
    try:
        if registry is not None:
            failures = registry.notify("edgecraft_report_ready", report=report.to_json(),
                                       report_dir=written[0].parent if written else None)
            if failures:
                report = report.with_integration_errors(failures)
                written = write_reports(report, files, step_summary=False)  # the same files, replaced as one set
                _append_step_summary(report)
        print_report(session.out, report)
        for error in report.integration_errors:
            word = "warning (best effort)" if error.best_effort else "error"
            session.err.print(f"{word}: integration {error.plugin!r} ({error.distribution} {error.version}) failed in "
                              f"{error.hook}: {error.error}; the verdicts stand and the reports name it",
                              highlight=False, markup=False)
        for path in written:
            session.out.print(f"report: {path}", highlight=False)
    except BaseException:
        remove_reports(written)
        session.err.print(f"note: reports removed, the run did not finish: {', '.join(map(str, written))}",
                          highlight=False, markup=False)
        raise
    code = _exit_code(report)
    session.verdict_pending = False  # every verdict is judged and every report written: exit codes may be final
    session.record({"verdict": code})
    raise typer.Exit(code)


def _exit_code(report: Report) -> int:
    """The report's exit code; 1 if it says 0 while a verdict failed (a report edited, or from an older version)."""
    code = report.exit_code if report.exit_code is not None else (EXIT_OK if report.passed else EXIT_CONTRACT_FAILED)
    failed = not report.passed or any(not t.passed or any(not v.passed for v in t.contracts) for t in report.targets)
    return EXIT_CONTRACT_FAILED if code == EXIT_OK and failed else code


def _append_step_summary(report: Report) -> None:
    """The integration errors of ``edgecraft_report_ready`` under the summary already appended to
    ``$GITHUB_STEP_SUMMARY`` (appending the whole summary again would show the run twice)."""
    import os

    from edgecraft.verify.reports.markdown import integration_section

    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write("\n".join(integration_section(report)) + "\n")
