"""The end every benchmark shares: a fixed-width table of its rows, its figures one per line, and its JSON.

One place, so every benchmark prints the same shape and the JSON always carries the CPU's int8 features
(every int8 ratio depends on them) and whether it was a ``--smoke`` run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


def print_table(rows: list[dict[str, Any]], cols: list[str]) -> None:
    """``rows`` as a left-aligned table of ``cols`` (a missing cell is blank)."""
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in cols))
    print()


def finish(figures: dict[str, Any], rows: list[dict[str, Any]], *, json_path: Path | None, smoke: bool,
           start: float, **extra: Any) -> None:
    """Print ``figures`` and the CPU, and write ``{figures, rows, smoke, cpu, extra}`` to ``json_path``."""
    from edgecraft.cpu import cpu_summary
    from edgecraft.cpu import describe as describe_cpu

    for key, value in figures.items():
        print(f"{key}: {value}")
    print(f"cpu: {describe_cpu()}")  # int8 speed depends on these features (VNNI, AVX-512)
    print(f"(total {time.time() - start:.0f} s{', smoke' if smoke else ''})")
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps({**figures, "rows": rows, **extra, "smoke": smoke, "cpu": cpu_summary()},
                                        indent=2, default=str))
