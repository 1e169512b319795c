"""Join the runtime's own count of what it executes (``Backend.executed_compute``) into a compute report.

The int8 share a report shows must be what runs: ONNX Runtime at basic optimization runs a QDQ graph in float,
and OpenVINO's NNCF int8 happens after the ONNX lineage, so the lineage graph says 100% in the first case and
0% in the second. The backend reads its executed graph; this module makes that the headline and keeps the
lineage's share beside it. MACs stay the lineage's count (the model's arithmetic, independent of a runtime's
padding or layout) unless shape inference left ops there uncounted that the executed graph resolved.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from edgecraft.backend import ExecutedCompute
from edgecraft.verify.report import ComputeReport, ExecutedComputeReport


def read_executed(backend: Any, folder: Path, target: str, options: Any, threads: int,
                  feeds: Mapping[str, np.ndarray], input_shapes: Mapping[str, tuple[int, ...]] | None
                  ) -> tuple[ExecutedCompute | None, str | None]:
    """The backend's executed count, or (None, why not): a failure to read it must not fail a measured run."""
    try:
        return backend.executed_compute(Path(folder), target, options, threads, feeds, input_shapes), None
    except Exception as exc:
        return None, f"the executed graph could not be read ({type(exc).__name__}: {str(exc)[:200]})"


def with_executed(report: ComputeReport | None, executed: ExecutedCompute | None, why_not: str | None
                  ) -> ComputeReport | None:
    """``report`` with the int8 share (and, where the lineage could not count, the MACs) of ``executed``."""
    if executed is None:
        if report is not None and why_not:
            report.notes.append(f"int8 share from the lineage ONNX graph: {why_not}")
        return report
    ran = ExecutedComputeReport(source=executed.source, macs=executed.macs, int8_macs=executed.int8_macs,
                                int8_fraction=executed.int8_fraction, by_op=dict(executed.by_op),
                                uncounted=list(executed.uncounted), notes=list(executed.notes))
    if report is None:  # no ONNX lineage (a torch-imported target): the executed graph is all there is
        return ComputeReport(params=0, weight_bytes=0, macs=ran.macs, int8_macs=ran.int8_macs,
                             int8_fraction=ran.int8_fraction, by_op=dict(ran.by_op), int8_source=ran.source,
                             executed=ran, notes=["no ONNX lineage: parameters not counted"], params_counted=False)
    # The lineage count's caveats about an int8 share it cannot see (native NNCF steps) no longer apply.
    notes = [n for n in report.notes if "int8 share" not in n and "int8_fraction" not in n]
    update: dict[str, Any] = {"lineage_int8_fraction": report.int8_fraction, "int8_source": ran.source,
                              "executed": ran, "notes": notes}
    if ran.macs:
        # The executed graph's share applied to the lineage's MACs: same layers, the runtime's precisions.
        update["int8_fraction"] = ran.int8_fraction
        if report.uncounted and not ran.uncounted and ran.macs > report.macs:
            update.update(macs=ran.macs, by_op=dict(ran.by_op), notes=[
                *notes, f"MACs from the executed graph ({ran.source}): the lineage graph left "
                f"{len(report.uncounted)} op(s) uncounted"])
        update["int8_macs"] = round(update["int8_fraction"] * update.get("macs", report.macs))
    else:
        update["int8_fraction"], update["int8_macs"] = 0.0, 0
    return report.model_copy(update=update)
