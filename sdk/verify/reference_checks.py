"""Check a reference report's target entry field by field before any of it is used.

A reference report with the right schema id can still miss a field (hand-edited, truncated, written
by a tool that copies part of it): the gate then failed with a KeyError traceback deep in the
comparison. Each side the comparison reads is validated against the report model it was written
from, and every problem is listed in one InputError (exit code 2), values never echoed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgecraft.errors import InputError
from pydantic import ValidationError


def check_reference_entry(path: Path, label: str, entry: dict[str, Any]) -> None:
    from edgecraft.verify.report import MeasurementReport

    problems: list[str] = []
    for side in ("baseline", "compressed"):
        try:
            MeasurementReport.model_validate(entry.get(side))
        except ValidationError as exc:
            for err in exc.errors(include_url=False)[:10]:
                where = ".".join(str(p) for p in err["loc"])
                problems.append(f"targets[{label}].{side}{'.' + where if where else ''}: {err['msg']}")
    if problems:
        raise InputError(f"--reference {path}: malformed reference report entry for target {label!r}:\n  "
                         + "\n  ".join(problems),
                         hint="pass a report written by `edgecraft run --report-json` unmodified")
