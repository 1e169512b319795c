"""Options several commands share (one definition each, so `run`, `gate` and `search` say the same thing)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from edgecraft.settings import CACHE_DIR_ENV

PlanArg = Annotated[Path, typer.Argument(help="Plan file (.yaml, .yml or .json).")]
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
CACHE_HELP = (f"Artifact cache folder (default: ${CACHE_DIR_ENV}, else $XDG_CACHE_HOME/edgecraft/artifacts, "
              "else ~/.cache/edgecraft/artifacts).")
CacheOpt = Annotated[Path | None, typer.Option("--cache-dir", envvar=CACHE_DIR_ENV, help=CACHE_HELP)]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Rebuild every artifact (the new builds replace the "
                                                             "cached ones); for plugin development.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]
RayOpt = Annotated[str | None, typer.Option(
    "--ray", envvar="EDGECRAFT_RAY_ADDRESS", metavar="ADDRESS",
    help="Build and measure each target on the Ray cluster at ADDRESS (HOST:PORT of its head; 'local' starts "
         "one in this process); compiling, judging and reports stay here. Needs the ray extra.")]
AllowNoContractsOpt = Annotated[bool, typer.Option(
    "--allow-no-contracts", help="Measure even when no contract (and no reference bound) applies to any target: "
    "without it such a run is exit 2, since it could only exit 0 without a verdict.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]

__all__ = ["CACHE_HELP", "AllowNoContractsOpt", "CacheOpt",
           "HtmlOpt", "JsonOpt", "JunitOpt", "MarkdownOpt", "NoCacheOpt", "PlanArg",
           "QuietOpt", "RayOpt", "ReferenceOpt", "ReportDirOpt", "ReportJson", "TargetOpt"]
