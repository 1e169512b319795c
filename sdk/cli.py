"""The ``edgecraft`` command line: what CI calls. Exit codes: 0 met, 1 contract failed, 2 bad input,
3 plugin or runtime failure.

Heavy imports (torch, runtimes) happen inside the commands, so ``edgecraft --help`` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from edgecraft.errors import EXIT_BAD_INPUT, EXIT_CONTRACT_FAILED, EXIT_OK, EXIT_PLUGIN_FAILURE, EdgecraftError
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from edgecraft.registry import Registry
    from edgecraft.verify.report import Report

app = typer.Typer(name="edgecraft", add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Compress neural networks for edge hardware and prove it: plan → compile → run → verify.")
device_app = typer.Typer(help="Prepare devices that targets run on (e.g. an emulated aarch64 board).",
                         no_args_is_help=True)
app.add_typer(device_app, name="device")
cache_app = typer.Typer(help="Show or clear the artifact cache.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")
plugin_app = typer.Typer(help="For plugin authors: check a plugin's conformance, or start a new plugin package.",
                         no_args_is_help=True)
app.add_typer(plugin_app, name="plugin")
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)

# typer vendors its own click; its exception base is reached through a public typer class.
_CLICK_EXCEPTION = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")

PlanArg = Annotated[Path, typer.Argument(help="Plan file (.yaml, .yml or .json).")]


#: ``--debug``: show tracebacks (a plugin's, the OS error's) under the one-line error message.
_DEBUG = False
#: Set while a run or gate command has not yet judged every verdict and written its reports: exit 0
#: is refused until it is cleared, whatever code path (a stray sys.exit, a plugin) tries to end the run.
_VERDICT_PENDING = False
#: ``--strict-plugins``: a plugin that fails to load fails every command (exit 3), not only plans that need it.
_STRICT_PLUGINS = False


@app.callback()
def _global(plugins: Annotated[str | None, typer.Option(
        "--plugins", envvar="EDGECRAFT_PLUGINS",
        help="Comma-separated entry-point names: load only these plugins (for locked-down CI).")] = None,
            debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks under error messages.")] = False,
            verbose: Annotated[bool, typer.Option(
                "--verbose", "-v", help="Show the log lines and warnings of the libraries edgecraft drives (NNCF, "
                "OpenVINO, ONNX Runtime, TVM, torch); hidden otherwise, with a count at the end.")] = False,
            strict_plugins: Annotated[bool, typer.Option(
                "--strict-plugins", envvar="EDGECRAFT_STRICT_PLUGINS",
                help="Fail (exit 3) when any installed plugin fails to load; by default a broken plugin is "
                     "skipped with a note and fails only plans that need it. The CI templates set it.")] = False,
            disable_plugins: Annotated[str | None, typer.Option(
                "--disable-plugins", envvar="EDGECRAFT_DISABLE_PLUGINS",
                help="Comma-separated entry-point names never to load (e.g. a broken plugin).")] = None,
            ) -> None:
    from edgecraft import logging_setup

    global _DEBUG, _STRICT_PLUGINS
    _DEBUG = _DEBUG or debug
    _STRICT_PLUGINS = strict_plugins
    logging_setup.configure(verbose)
    if plugins is not None:
        os.environ["EDGECRAFT_PLUGINS"] = plugins
    if disable_plugins is not None:
        os.environ["EDGECRAFT_DISABLE_PLUGINS"] = disable_plugins


def _registry(*, tolerate_broken: bool = False) -> Registry:
    """The registry; broken plugins are noted on stderr (``tolerate_broken``: the command lists them itself)."""
    from edgecraft.registry import build_registry

    registry = build_registry(strict=_STRICT_PLUGINS and not tolerate_broken)
    if not tolerate_broken:
        for broken in registry.broken.values():
            err.print(f"note: plugin {broken.plugin!r} ({broken.distribution} {broken.version}) did not load and "
                      "is skipped; `edgecraft plugins` shows why", highlight=False, markup=False)
    return registry


# ---------------------------------------------------------------------------- plugins / schema
@app.command()
def plugins(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """List every strategy, backend, target and device with the distribution that provides it, and every
    plugin that did not load, with the reason (exit 3 for those only under --strict-plugins)."""
    registry = _registry(tolerate_broken=True)
    rows: list[dict[str, str]] = []
    for kind, table in (("strategy", registry.strategies), ("backend", registry.backends),
                        ("target", registry.targets), ("device", registry.devices), ("metric", registry.metrics),
                        ("model source", registry.model_sources), ("dataset kind", registry.dataset_kinds)):
        for name, provided in sorted(table.items()):
            rows.append({"kind": kind, "name": name, "distribution": provided.provenance.distribution,
                         "version": provided.provenance.version, "plugin": provided.provenance.plugin,
                         "summary": provided.summary})
    rows.extend(_integration_rows(registry))
    for broken in registry.broken.values():
        rows.append({"kind": "broken", "name": broken.plugin, "distribution": broken.distribution,
                     "version": broken.version, "plugin": broken.plugin, "summary": broken.reason})
    for name in registry.disabled:
        rows.append({"kind": "disabled", "name": name, "distribution": "", "version": "", "plugin": name,
                     "summary": "skipped: named in EDGECRAFT_DISABLE_PLUGINS / --disable-plugins"})
    if as_json:
        out.print_json(json.dumps(rows))
    else:
        table = Table(title="edgecraft plugins")
        for column in ("kind", "name", "distribution", "version", "plugin", "summary"):
            table.add_column(column)
        for row in rows:
            style = "red" if row["kind"] == "broken" else None
            table.add_row(*(_safe(v) for v in row.values()), style=style)
        out.print(table)
    if registry.broken and _STRICT_PLUGINS:
        raise next(iter(registry.broken.values())).error()


def _integration_rows(registry: Registry) -> list[dict[str, str]]:
    """Plugins implementing lifecycle hooks (run started, target finished, report ready), with their distribution."""
    from importlib import metadata

    from edgecraft.hookspecs import ENTRY_POINT_GROUP

    dists = {ep.name: ep.dist for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    hooks: dict[str, list[str]] = {}
    pm = registry.plugin_manager
    for hook in ("edgecraft_run_started", "edgecraft_target_finished", "edgecraft_report_ready"):
        for impl in getattr(pm.hook, hook).get_hookimpls():
            hooks.setdefault(pm.get_name(impl.plugin) or repr(impl.plugin), []).append(hook.removeprefix("edgecraft_"))
    rows = []
    for name, implemented in sorted(hooks.items()):
        dist = dists.get(name)
        summary = ((getattr(pm.get_plugin(name), "__doc__", None) or "").strip().splitlines() or [""])[0]
        rows.append({"kind": "integration", "name": name, "distribution": dist.name if dist else "local",
                     "version": dist.version if dist else "-", "plugin": name,
                     "summary": f"{summary} [hooks: {', '.join(implemented)}]"})
    return rows


@app.command()
def schema() -> None:
    """Print the plan's JSON Schema, including every installed strategy's params and target's options."""
    from edgecraft.plan.schema import plan_json_schema

    sys.stdout.write(json.dumps(plan_json_schema(_registry()), indent=2) + "\n")


@app.command()
def validate(plan: PlanArg,
             no_compile: Annotated[bool, typer.Option(
                 "--no-compile", help="Check the schema and the installed plugins only; skip compiling every "
                 "target (which loads the model and the data, but builds nothing).")] = False) -> None:
    """Check a plan as `run` would before building: schema, plugins, and every target compiled.

    "ok" means `run` will not refuse the plan at compile time: every step bound to every target, the
    data bound to the model's inputs, contracts checked against the metrics. Nothing is built or trained.
    """
    from edgecraft.plan.loading import load_plan

    registry = _registry()
    loaded, base_dir = load_plan(plan, registry)
    if loaded.search is not None and loaded.search.space:
        from edgecraft.search.space import resolve_space

        resolve_space(loaded, registry, source=str(plan))  # steps, params and bounds; `search` also compiles them
    checked = "schema and plugins"
    if not no_compile:
        from edgecraft.compile.checks import compile_all, prepare

        compile_all(prepare(loaded, registry, base_dir), [t.label for t in loaded.targets])
        checked = "schema, plugins and every target compiled"
    out.print(f"[green]ok[/green] {plan}: {len(loaded.steps)} step(s), targets "
              f"{[t.label for t in loaded.targets]}, {len(loaded.contracts)} contract(s) ({checked})")


@app.command("compile")
def compile_command(
        plan: PlanArg,
        target: Annotated[list[str], typer.Option("--target", "-t", help="Target label (repeatable).")],
        as_json: Annotated[bool, typer.Option("--json", help="Print the compiled plan as JSON.")] = False) -> None:
    """Resolve the plan for a target and print the concrete pipeline (nothing is built)."""
    from edgecraft.compile.checks import compile_all, prepare
    from edgecraft.plan.loading import load_plan

    registry = _registry()
    loaded, base_dir = load_plan(plan, registry)
    compiled = compile_all(prepare(loaded, registry, base_dir), target)
    if as_json:
        sys.stdout.write(json.dumps({k: v.model_dump(mode="json", by_alias=True) for k, v in compiled.items()},
                                    indent=2) + "\n")
        return
    for cp in compiled.values():
        for line in cp.describe():
            out.print(line, highlight=False, markup=False)


# ---------------------------------------------------------------------------- run
def _safe(text: object) -> str:
    """User or plugin text for the terminal: control characters escaped, rich markup inert."""
    from edgecraft.safe_text import clean_text
    from rich.markup import escape

    return escape(clean_text(text, keep_newlines=False))


def _print_report(report: Report) -> None:
    for target in report.targets:
        summary = Table(title=_safe(f"{target.target} ({target.backend})")
                        + (" [EMULATED DEVICE]" if target.emulated else ""))
        for column in ("", "baseline", "compressed", "ratio"):
            summary.add_column(column, justify="right")
        for name, value in target.baseline.metrics.items():
            summary.add_row(_safe(name), f"{value:.4f}", f"{target.compressed.metrics.get(name, float('nan')):.4f}", "")
        b, c = target.baseline.latency_ms, target.compressed.latency_ms
        for pct in ("p50", "p95", "p99"):
            bv, cv = getattr(b, pct), getattr(c, pct)
            summary.add_row(f"latency {pct} (ms)", f"{bv:.3f}", f"{cv:.3f}", f"{bv / cv:.2f}x")
        summary.add_row("size (bytes)", str(target.baseline.size_bytes), str(target.compressed.size_bytes),
                        f"{target.baseline.size_bytes / max(target.compressed.size_bytes, 1):.2f}x")
        from edgecraft.verify.reports.resources_rows import resource_rows

        for row in resource_rows(target):  # peak memory and MACs, next to the size (issue 17)
            summary.add_row(*(_safe(cell) for cell in row))
        out.print(summary)
        if target.contracts:
            verdicts = Table(title=_safe(f"contracts on {target.target}"))
            for column in ("contract", "status", "measured", "bound", "detail"):
                verdicts.add_column(column)
            for v in target.contracts:
                color = {"pass": "green", "fail": "red", "inconclusive": "yellow"}[v.status]
                status = v.status if v.status != "inconclusive" else f"inconclusive→{'pass' if v.passed else 'fail'}"
                ci = f" [{v.ci_low:.4g}, {v.ci_high:.4g}]" if v.ci_low is not None and v.ci_high is not None else ""
                verdicts.add_row(_safe(v.name), f"[{color}]{status}[/{color}]", f"{v.measured:.4g}{ci}",
                                 f"{v.bound:.4g}", _safe(v.detail + (f" ({v.note})" if v.note else "")))
            out.print(verdicts)
        precision_note = (target.device or {}).get("precision_note")
        if precision_note:
            out.print(f"note: {target.target}: {precision_note}", highlight=False, markup=False)
    color = "green" if report.passed else "red"
    out.print(f"[{color}]{_safe(summary_line(report))}[/{color}]")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def summary_line(report: Report) -> str:
    """The run's last line: how many contracts passed, failed and stayed inconclusive, on how many targets.

    The counts are the Markdown summary's (one per verdict), so a reader of either sees the same numbers:
    "FAILED: 1 of 6 contracts failed (5 passed) on 2 targets", never "FAILED: 6 contract(s)".
    """
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


ReportJson = Annotated[Path | None, typer.Option("--report-json", help="Write the JSON report here.")]
JunitOpt = Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML here (one test case per contract "
                                                              "per target).")]
MarkdownOpt = Annotated[Path | None, typer.Option("--markdown", help="Write a Markdown summary here (it is also "
                                                                    "appended to $GITHUB_STEP_SUMMARY when set).")]
HtmlOpt = Annotated[Path | None, typer.Option("--html", help="Write a self-contained HTML report with plots here.")]
ReportDirOpt = Annotated[Path | None, typer.Option("--report-dir", help="Write report.json, junit.xml, summary.md "
                                                                       "and report.html into this folder.")]
ReferenceOpt = Annotated[Path | None, typer.Option(
    "--reference", help="JSON report of the last released artifact: also judge the plan's gate.reference bounds "
                        "against it (re-measuring its artifact when it is still in the cache).")]
TargetOpt = Annotated[list[str] | None, typer.Option("--target", "-t", help="Target label (repeatable); default: "
                                                     "every target of the plan.")]
CACHE_HELP = ("Artifact cache folder (default: $EDGECRAFT_CACHE_DIR, else $XDG_CACHE_HOME/edgecraft/artifacts, "
              "else ~/.cache/edgecraft/artifacts).")
CacheOpt = Annotated[Path | None, typer.Option("--cache-dir", envvar="EDGECRAFT_CACHE_DIR", help=CACHE_HELP)]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Rebuild every artifact (the new builds replace the "
                                                             "cached ones); for plugin development.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]
RayOpt = Annotated[str | None, typer.Option(
    "--ray", envvar="EDGECRAFT_RAY_ADDRESS", metavar="ADDRESS",
    help="Build and measure each target on the Ray cluster at ADDRESS (HOST:PORT of its head; 'local' starts "
         "one in this process); compiling, judging and reports stay here. Needs the ray extra.")]


def _run_and_report(plan: Path, target: list[str] | None, reference: Path | None, cache_dir: Path | None,
                    quiet: bool, files: Any, no_cache: bool = False, ray: str | None = None) -> None:
    from edgecraft.logging_setup import quiet_runtimes
    from edgecraft.plan.loading import load_plan
    from edgecraft.preflight import preflight_run
    from edgecraft.progress import NullProgress
    from edgecraft.rich_progress import RichProgress
    from edgecraft.runner import run_plan
    from edgecraft.verify.gate import ReferenceReport

    global _VERDICT_PENDING
    _VERDICT_PENDING = True
    from edgecraft.execute import executor_for

    files.check_available()
    for note in files.notes:
        err.print(f"note: {note}", highlight=False, markup=False)
    executor = executor_for(ray)  # --ray without the extra: exit 2 before anything else
    registry = _registry()
    quiet_runtimes()
    loaded, base_dir = load_plan(plan, registry)
    ref = ReferenceReport.load(reference) if reference is not None else None
    preflight_run(files, cache_dir)
    progress = NullProgress() if quiet else RichProgress(err)
    with progress if isinstance(progress, RichProgress) else _nullcontext():
        report = run_plan(loaded, registry, base_dir=base_dir, targets=target or None, cache_dir=cache_dir,
                          progress=progress, plan_path=str(plan), reference=ref, no_cache=no_cache,
                          executor=executor)
    _finish(report, files, registry)


def _finish(report: Report, files: Any, registry: Registry | None) -> None:
    global _VERDICT_PENDING
    from edgecraft.verify.reports import write_reports

    written = write_reports(report, files)
    _VERDICT_PENDING = False  # every verdict is judged and every report written: exit codes may now be final
    if registry is not None:
        registry.notify("edgecraft_report_ready", report=report.to_json(),
                        report_dir=written[0].parent if written else None)
    _print_report(report)
    for path in written:
        out.print(f"report: {path}", highlight=False)
    code = report.exit_code if report.exit_code is not None else (EXIT_OK if report.passed else EXIT_CONTRACT_FAILED)
    raise typer.Exit(code)


@app.command()
def run(plan: PlanArg, target: TargetOpt = None, report_json: ReportJson = None, cache_dir: CacheOpt = None,
        quiet: QuietOpt = False, reference: ReferenceOpt = None, junit: JunitOpt = None, markdown: MarkdownOpt = None,
        html: HtmlOpt = None, report_dir: ReportDirOpt = None, no_cache: NoCacheOpt = False,
        ray: RayOpt = None) -> None:
    """Compile, build, measure and judge the plan; exit 1 if a contract fails (4: undecided, if the plan says so)."""
    from edgecraft.verify.reports import ReportFiles

    files = ReportFiles.from_options(report_dir=report_dir, json=report_json, junit=junit, markdown=markdown,
                                     html=html)
    _run_and_report(plan, target, reference, cache_dir, quiet, files, no_cache, ray)


@app.command()
def gate(plan: PlanArg,
         reference: Annotated[Path, typer.Option("--reference", help="JSON report of the last released artifact.")],
         target: TargetOpt = None, report_json: ReportJson = None, cache_dir: CacheOpt = None, quiet: QuietOpt = False,
         junit: JunitOpt = None, markdown: MarkdownOpt = None, html: HtmlOpt = None,
         report_dir: ReportDirOpt = None, no_cache: NoCacheOpt = False, ray: RayOpt = None) -> None:
    """Release gate: `run` with a reference report required (the plan's gate.reference bounds apply)."""
    from edgecraft.verify.reports import ReportFiles

    files = ReportFiles.from_options(report_dir=report_dir, json=report_json, junit=junit, markdown=markdown,
                                     html=html)
    _run_and_report(plan, target, reference, cache_dir, quiet, files, no_cache, ray)


@app.command()
def search(plan: PlanArg, target: TargetOpt = None,
           trials: Annotated[int | None, typer.Option("--trials", min=1, help="Trials per target (default: the "
                                                      "plan's search.trials); a resumed search runs only the rest.")
                             ] = None,
           time_budget: Annotated[float | None, typer.Option("--time-budget", min=1, help="Seconds before no new "
                                                             "trial starts (default: search.time_budget_s).")] = None,
           ray: Annotated[str | None, typer.Option(
               "--ray", envvar="EDGECRAFT_RAY_ADDRESS", metavar="ADDRESS",
               help="Build and measure the trials on the Ray cluster at ADDRESS (HOST:PORT of its head; 'local' "
                    "starts one in this process), up to search.parallel at once (default: the cluster's timing "
                    "slots); asking, judging and reports stay here. Needs the ray extra.")] = None,
           out_dir: Annotated[Path, typer.Option("--out", help="Folder for search.json, trials.md/csv, search.html, "
                                                 "best.<target>.plan.yaml and the resumable study (search.db).")
                              ] = Path("search"),
           cache_dir: CacheOpt = None, quiet: QuietOpt = False) -> None:
    """Search compression recipes per target (Optuna); exit 0 if a candidate meets every contract, else 1."""
    from edgecraft.progress import NullProgress
    from edgecraft.rich_progress import RichProgress
    from edgecraft.search.command import search_command

    global _VERDICT_PENDING
    _VERDICT_PENDING = True
    registry = _registry()
    progress = NullProgress() if quiet else RichProgress(err)

    def log(message: str) -> None:
        if not quiet:
            err.print(message, highlight=False, markup=False)

    with progress if isinstance(progress, RichProgress) else _nullcontext():
        code, written, document = search_command(plan, registry, targets=target or None, trials=trials,
                                                 time_budget_s=time_budget, ray=ray, out_dir=out_dir,
                                                 cache_dir=cache_dir, progress=progress, log=log)
    _VERDICT_PENDING = False
    for entry in document["targets"]:
        best, closest = entry["best"], entry["closest"]
        if best is not None:
            out.print(f"{_safe(entry['target'])}: best trial {best['trial']}: speedup {best['speedup']:.2f}x, size "
                      f"ratio {best['size_ratio']:.2f}x; {len(entry['front'])} on the front; plan "
                      f"{_safe(best['plan_file'])}", highlight=False)
        elif closest is not None:
            missed = "; ".join(f"{m['contract']} (short by {100 * m['relative_shortfall']:.1f}%)"
                               for m in closest["missed"]) or "pruned"
            out.print(f"{_safe(entry['target'])}: no candidate meets every contract; closest: trial "
                      f"{closest['trial']}: {_safe(missed)}", highlight=False)
        else:
            out.print(f"{_safe(entry['target'])}: no trial finished", highlight=False)
    for path in written:
        out.print(f"search: {path}", highlight=False)
    raise typer.Exit(code)


@app.command()
def report(source: Annotated[Path, typer.Argument(help="A JSON report written by --report-json.")],
           junit: JunitOpt = None, markdown: MarkdownOpt = None, html: HtmlOpt = None,
           report_dir: ReportDirOpt = None) -> None:
    """Render an existing JSON report as JUnit XML, Markdown and/or HTML; exits with the report's exit code."""
    from edgecraft.preflight import preflight_reports
    from edgecraft.verify.report import Report as ReportModel
    from edgecraft.verify.reports import ReportFiles

    files = ReportFiles.from_options(report_dir=report_dir, junit=junit, markdown=markdown, html=html)
    if report_dir is not None:
        files.json = None  # never overwrite the source with itself
    files.check_available()
    preflight_reports(files)
    for note in files.notes:
        err.print(f"note: {note}", highlight=False, markup=False)
    _finish(ReportModel.load(source), files, None)


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


# ---------------------------------------------------------------------------- devices
@device_app.command("list")
def device_list() -> None:
    """List the devices installed plugins can prepare, and whether each is ready."""
    registry = _registry()
    table = Table(title="devices")
    for column in ("name", "distribution", "summary", "status"):
        table.add_column(column)
    for name, provided in sorted(registry.devices.items()):
        table.add_row(name, provided.provenance.distribution, provided.summary,
                      json.dumps(provided.obj().status()))
    out.print(table)


@device_app.command("setup")
def device_setup(
        name: Annotated[str, typer.Argument(help="Device name (see `edgecraft device list`).")],
        cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="Where devices are kept.")] = None,
        force: Annotated[bool, typer.Option("--force", help="Rebuild even if already prepared.")] = False) -> None:
    """Prepare a device once (cached), e.g. `edgecraft device setup arm64-emulated`."""
    from edgecraft.errors import InputError

    registry = _registry()
    if name not in registry.devices:
        raise InputError(f"unknown device {name!r}; available: {', '.join(sorted(registry.devices)) or 'none'}",
                         hint="devices come with backend extras, e.g. pip install 'edgecraft[tvm]'")
    path = registry.devices[name].obj().setup(cache_dir, force=force)
    out.print(f"[green]ready[/green] {name}: {path}")


@device_app.command("serve")
def device_serve(
        name: Annotated[str, typer.Argument(help="Device name, e.g. arm64-emulated.")],
        tracker: Annotated[str, typer.Option("--tracker", metavar="HOST:PORT",
                                             help="The TVM RPC tracker to register with "
                                                  "(python -m tvm.exec.rpc_tracker --host H --port P).")],
        key: Annotated[str, typer.Option("--key", help="The device key targets ask the tracker for "
                                                       "(options.tracker_key).")],
        host: Annotated[str, typer.Option("--host", help="Address the board's RPC server binds to. Keep it "
                                                         "loopback or a private network: TVM RPC has no "
                                                         "authentication.")] = "127.0.0.1",
        port: Annotated[int | None, typer.Option("--port", help="Port of the board's RPC server (default: a free "
                                                                "one).")] = None,
        threads: Annotated[int, typer.Option("--threads", help="Runtime threads on the board.")] = 1,
        board_name: Annotated[str | None, typer.Option("--name", help="A name for this board (reports show it).")
                              ] = None,
        log: Annotated[Path | None, typer.Option("--log", help="Write the board's RPC server log here.")] = None,
        cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="Where devices are kept.")] = None,
        ) -> None:
    """Serve a prepared device as a board behind a TVM RPC tracker, in the foreground (Ctrl-C stops):
    targets with device: tracker and this key get it from the tracker's queue."""
    from edgecraft.errors import InputError

    registry = _registry()
    if name not in registry.devices:
        raise InputError(f"unknown device {name!r}; available: {', '.join(sorted(registry.devices)) or 'none'}")
    code = registry.devices[name].obj().serve(cache_dir, tracker=tracker, key=key, host=host, port=port,
                                              threads=threads, name=board_name, log_path=log)
    raise typer.Exit(code)


@device_app.command("status")
def device_status(
        tracker: Annotated[str, typer.Option("--tracker", metavar="HOST:PORT", help="The TVM RPC tracker.")],
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """List a TVM RPC tracker's queue (boards per key: total, free, pending requests) and its boards."""
    from edgecraft.errors import RuntimeFailure

    try:
        from edgecraft.backends.tvm.rpc_server import tracker_summary

        summary = tracker_summary(tracker)
    except ImportError as exc:
        from edgecraft.errors import InputError

        raise InputError("device status needs TVM", hint="pip install 'edgecraft[tvm]'") from exc
    except (OSError, RuntimeError) as exc:
        raise RuntimeFailure(f"cannot read the TVM RPC tracker at {tracker}: {type(exc).__name__}: {exc}") from exc
    queue: dict[str, Any] = dict(summary.get("queue_info", {}))  # type: ignore[call-overload]
    boards: list[dict[str, Any]] = list(summary.get("server_info", []))  # type: ignore[call-overload]
    totals: dict[str, int] = {}
    for board in boards:
        board_key = str(board.get("key", "")).removeprefix("server:")
        totals[board_key] = totals.get(board_key, 0) + 1
    if as_json:
        sys.stdout.write(json.dumps({"tracker": tracker, "queue": {k: {**v, "total": totals.get(k, 0)}
                                                                   for k, v in queue.items()},
                                     "boards": boards}, indent=2) + "\n")
        return
    table = Table(title=f"TVM RPC tracker {tracker}: queue")
    for column in ("key", "boards", "free", "pending requests"):
        table.add_column(column)
    for queue_key in sorted(set(queue) | set(totals)):
        info = queue.get(queue_key, {})
        table.add_row(_safe(queue_key), str(totals.get(queue_key, 0)), str(info.get("free", 0)),
                      str(info.get("pending", 0)))
    out.print(table)
    listing = Table(title="boards")
    for column in ("key", "address"):
        listing.add_column(column)
    for board in boards:
        address = board.get("addr") or ["?", "?"]
        listing.add_row(_safe(str(board.get("key", "")).removeprefix("server:")), _safe(f"{address[0]}:{address[1]}"))
    out.print(listing)


# ---------------------------------------------------------------------------- plugin authors
def _json_option(raw: str | None, option: str) -> dict[str, Any]:
    from edgecraft.errors import InputError

    if raw is None:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise InputError(f"{option}: not JSON ({exc})", hint=f"e.g. {option} '{{\"key\": 1}}'") from None
    if not isinstance(value, dict):
        raise InputError(f"{option}: expected a JSON object, got {type(value).__name__}")
    return value


@plugin_app.command("check")
def plugin_check(
        name: Annotated[str, typer.Argument(help="An installed strategy or backend (or a target's name).")],
        params: Annotated[str | None, typer.Option(
            "--params", help="Strategy params for the kit's plans, as JSON (default: the params' defaults). "
                             "The kit's plans have one dataset, 'kit'.")] = None,
        target: Annotated[list[str] | None, typer.Option(
            "--target", "-t", help="Only these targets (repeatable); emulated targets are checked only when "
                                   "named.")] = None,
        options: Annotated[str | None, typer.Option(
            "--options", help="Target options as JSON: {\"TARGET\": {\"option\": value}}.")] = None,
        tolerance: Annotated[float, typer.Option(
            "--tolerance", help="Backends: largest allowed difference from onnxruntime's outputs (relative to the "
                                "output's scale).")] = 1e-3,
        verbose: Annotated[bool, typer.Option("--all", "-a", help="Also list the checks that passed, refusals and "
                                                                   "skips.")] = False) -> None:
    """Run the conformance kit on an installed strategy or backend: exit 0 if it conforms, 1 with one line per
    violation (method and what was expected)."""
    from edgecraft.testing import check_plugin

    registry = _registry()
    report = check_plugin(name, params=_json_option(params, "--params"), targets=target,
                          options=_json_option(options, "--options"), tolerance=tolerance, registry=registry)
    for line in report.lines(verbose=verbose):
        sys.stdout.write(line + "\n")  # one line per finding, never wrapped: CI logs and grep read them
    sys.stdout.flush()
    color = "green" if report.ok else "red"
    out.print(f"[{color}]{_safe(report.summary())}[/{color}]")
    if not verbose and report.ok:
        refused = sum(1 for f in report.findings if f.outcome in ("refused", "skipped"))
        if refused:
            out.print(f"({refused} refusal(s)/skip(s) not shown: --all lists them)", highlight=False)
    raise typer.Exit(EXIT_OK if report.ok else EXIT_CONTRACT_FAILED)


@plugin_app.command("new")
def plugin_new(
        kind: Annotated[str, typer.Argument(help="strategy or backend.")],
        name: Annotated[str, typer.Argument(help="The strategy's (or target's) name in plans, e.g. "
                                                 "weight-clustering.")],
        directory: Annotated[Path | None, typer.Argument(help="Where to write the package (default "
                                                              "./edgecraft-NAME); must be new or empty.")] = None
        ) -> None:
    """Write a complete, installable plugin package that passes `edgecraft plugin check` as generated."""
    from edgecraft.scaffold import create

    root, written = create(kind, name, directory)  # type: ignore[arg-type]
    out.print(f"[green]created[/green] {_safe(root)} ({len(written)} files): a {kind} plugin {name!r}")
    for line in (f"  pip install -e {root}", f"  edgecraft plugin check {name}", f"  (cd {root} && pytest)"):
        out.print(line, highlight=False, markup=False)


# ---------------------------------------------------------------------------- cache
def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


@cache_app.command("info")
def cache_info_command(cache_dir: CacheOpt = None,
                       as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False
                       ) -> None:
    """Show where the artifact cache is, how many entries it holds and their size."""
    from edgecraft.assembly.cache_admin import cache_info

    info = cache_info(cache_dir)
    if as_json:
        sys.stdout.write(json.dumps(info.to_json(), indent=2) + "\n")
        return
    out.print(f"cache: {info.path}", highlight=False, markup=False)
    out.print(f"{len(info.entries)} entries, {_human(info.bytes)}"
              + (f", {len(info.partial)} unfinished build(s)" if info.partial else ""), highlight=False)
    if info.entries:
        table = Table()
        for column in ("key", "size", "created", "plan", "target", "steps"):
            table.add_column(column)
        for entry in info.entries:
            table.add_row(entry.key[:16], _human(entry.bytes), entry.created or "?", _safe(entry.plan or "?"),
                          _safe(entry.target or "?"), _safe(", ".join(entry.steps) or "(baseline)"))
        out.print(table)


@cache_app.command("clear")
def cache_clear_command(cache_dir: CacheOpt = None) -> None:
    """Delete every cached artifact (only what edgecraft wrote: entries and unfinished builds)."""
    from edgecraft.assembly.cache_admin import clear_cache

    removed, freed = clear_cache(cache_dir)
    out.print(f"cleared {removed} entries ({_human(freed)}) from {cache_dir or _default_cache()}",
              highlight=False, markup=False)


def _default_cache() -> Path:
    from edgecraft.assembly.artifacts import default_cache_dir

    return default_cache_dir()


# ---------------------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> int:
    """Run the CLI and map errors to exit codes (2 bad input, 3 plugin/runtime failure)."""
    global _DEBUG, _VERDICT_PENDING, _STRICT_PLUGINS
    _STRICT_PLUGINS = False
    from edgecraft.safe_text import clean_text
    from edgecraft.shutdown import EXIT_INTERRUPTED, interrupted_exit, terminate_raises

    saved_plugins = os.environ.get("EDGECRAFT_PLUGINS")
    saved_disabled = os.environ.get("EDGECRAFT_DISABLE_PLUGINS")
    _DEBUG = "--debug" in (sys.argv[1:] if argv is None else argv)  # also for errors raised before the callback
    _VERDICT_PENDING = False
    from edgecraft import logging_setup

    try:
        with terminate_raises():
            # Without standalone mode click returns a typer.Exit's code instead of raising it.
            result = app(args=argv, standalone_mode=False)
        code = result if isinstance(result, int) else EXIT_OK
        if code == EXIT_INTERRUPTED:  # typer turns KeyboardInterrupt (and our SIGTERM's Terminated) into 130
            return interrupted_exit() or code
        return _refuse_exit_without_verdict(code)
    except typer.Exit as exc:
        return _refuse_exit_without_verdict(int(exc.exit_code))
    except EdgecraftError as exc:
        # Plain stderr, unwrapped: CI logs and grep must see the message exactly as written.
        sys.stderr.write(f"error ({type(exc).__name__}): {clean_text(exc)}\n")
        _debug_traceback(exc)
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        code = interrupted_exit()
        if code is None:
            sys.stderr.write("interrupted; partial artifacts removed\n")
        return code or EXIT_INTERRUPTED
    except OSError as exc:
        # The environment failed (disk full, read-only, not a directory): its path and the OS's words.
        where = exc.filename if exc.filename is not None else "(unknown path)"
        sys.stderr.write(f"error (environment): {clean_text(where)}: {clean_text(exc.strerror or exc)}\n")
        _debug_traceback(exc)
        return EXIT_PLUGIN_FAILURE
    except SystemExit as exc:
        # Only user or plugin code raises SystemExit here (click returns its own exits): never a verdict.
        sys.stderr.write(f"error (unexpected exit): code in this run called sys.exit({clean_text(exc.code)}) "
                         "before every verdict was judged; exit 3, not a verdict\n")
        _debug_traceback(exc)
        return EXIT_PLUGIN_FAILURE
    except _CLICK_EXCEPTION as exc:
        # Usage errors (a missing option, a bad choice) arrive here in non-standalone mode.
        exc.show()
        return EXIT_BAD_INPUT
    except Exception:
        # Anything unanticipated is a failure of edgecraft or a library, never a verdict: Python's own
        # exit code for an uncaught exception (1) would read as "a contract failed" in CI.
        import traceback

        traceback.print_exc()
        sys.stderr.write("error (unexpected): the traceback above is a bug or a runtime failure, not a verdict\n")
        return EXIT_PLUGIN_FAILURE
    finally:
        hidden = logging_setup.hidden_summary()
        if hidden:
            sys.stderr.write(f"note: {hidden}\n")
        logging_setup.reset()
        # --plugins sets the variable for this invocation only (main() may be called again in-process).
        for variable, saved in (("EDGECRAFT_PLUGINS", saved_plugins), ("EDGECRAFT_DISABLE_PLUGINS", saved_disabled)):
            if saved is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = saved


def _refuse_exit_without_verdict(code: int) -> int:
    if code == EXIT_OK and _VERDICT_PENDING:
        sys.stderr.write("error (no verdict): the run ended before every verdict was judged and the report "
                         "written; exit 3, not a verdict\n")
        return EXIT_PLUGIN_FAILURE
    return code


def _debug_traceback(exc: BaseException) -> None:
    if _DEBUG:
        import traceback

        traceback.print_exception(exc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
