"""Memory and compute rows shared by the terminal table, the Markdown summary and the HTML report.

One place decides what an engineer sizing a model for a board reads next to the artifact size: the
peak memory the model adds (and its spread), the whole process's peak with the interpreter and runtime,
the weights' share of that peak, the MACs per sample and how many of them run in int8.
"""

from __future__ import annotations

from typing import Any

from edgecraft.verify.report import ComputeReport, MeasurementReport, TargetReport
from edgecraft.verify.resources import fmt_bytes, fmt_macs

Row = tuple[str, str, str, str]
"""(label, baseline, compressed, baseline/compressed ratio or a note)."""


def _mem(m: MeasurementReport) -> str:
    mem = m.memory
    if mem is None or not mem.measured or mem.peak_bytes is None:
        return "not measured"
    spread = f" ±{100 * mem.cv:.1f}%" if mem.cv is not None and len(mem.samples) > 1 else ""
    return f"{fmt_bytes(mem.peak_bytes)}{spread}"


def memory_rows(t: TargetReport) -> list[Row]:
    """Rows for peak memory; empty when memory was not asked for on this target."""
    b, c = t.baseline.memory, t.compressed.memory
    if b is None and c is None:
        return []
    if b is not None and not b.measured:
        return [("peak memory", "not measured", "not measured", b.reason or "")]
    rows: list[Row] = [("peak memory (model, incremental)", _mem(t.baseline), _mem(t.compressed),
                        f"{t.ratios['memory_ratio']:.2f}x" if "memory_ratio" in t.ratios else "")]
    if b is not None and c is not None and b.process_peak_bytes and c.process_peak_bytes:
        rows.append(("process peak (interpreter + runtime + model)", fmt_bytes(b.process_peak_bytes),
                     fmt_bytes(c.process_peak_bytes), ""))
    shares = []
    for m in (t.baseline, t.compressed):
        if m.compute is not None and m.memory is not None and m.memory.peak_bytes:
            shares.append(f"{100 * m.compute.weight_bytes / m.memory.peak_bytes:.0f}%")
        else:
            shares.append("–")
    rows.append(("weights' share of peak memory", shares[0], shares[1], ""))
    return rows


def compute_rows(t: TargetReport) -> list[Row]:
    """Rows for MACs, int8 share and parameters; empty when the artifacts have no ONNX graph."""
    b, c = t.baseline.compute, t.compressed.compute
    if b is None or c is None:
        return []
    return [("MACs per sample (batch 1)", fmt_macs(b.macs), fmt_macs(c.macs),
             f"{b.macs / c.macs:.2f}x" if c.macs else ""),
            ("int8 share of MACs (as executed)" if c.executed is not None else "int8 share of MACs (ONNX lineage)",
             f"{100 * b.int8_fraction:.0f}%", f"{100 * c.int8_fraction:.0f}%",
             f"lineage said {100 * c.lineage_int8_fraction:.0f}%" if c.executed is not None
             and c.lineage_int8_fraction is not None
             and abs(c.lineage_int8_fraction - c.int8_fraction) >= 0.005 else ""),
            ("parameters", _counted(b, f"{b.params:,}"), _counted(c, f"{c.params:,}"), ""),
            ("weights in the ONNX graph", _counted(b, fmt_bytes(b.weight_bytes)),
             _counted(c, fmt_bytes(c.weight_bytes)), "")]


def _counted(compute: ComputeReport, text: str) -> str:
    """``text``, or why there is no count (an artifact without an ONNX graph: an OpenVINO IR, a .pte)."""
    return text if compute.params_counted else "not counted (no ONNX graph)"


def resource_rows(t: TargetReport) -> list[Row]:
    return memory_rows(t) + compute_rows(t)


def resource_notes(t: TargetReport) -> list[str]:
    """Caveats worth a line under the table (why memory was not measured, what the count cannot see)."""
    notes: list[str] = _export_notes(t)
    for side, m in (("baseline", t.baseline), ("compressed", t.compressed)):
        if m.memory is not None and m.memory.reason and m.memory.measured:
            notes.append(f"{side} memory: {m.memory.reason}")
        if m.compute is not None:
            notes += [f"{side} compute: {n}" for n in m.compute.notes]
            if m.compute.executed is not None:
                notes.append(f"{side} int8 share counted on {m.compute.int8_source}")
    mem = t.compressed.memory
    if mem is not None and mem.measured and mem.inputs:
        notes.append(f"peak memory is for one call on {mem.inputs} (latency.batch_size), the runtime loaded as the "
                     "zero; a board also needs the process peak above")
    return list(dict.fromkeys(notes))


def _export_line(export: dict[str, Any]) -> str:
    details = [f"{k} {export[k]}" for k in ("attention", "opset") if export.get(k) is not None]
    return f"{export.get('exporter', '?')} exporter" + (f" ({', '.join(details)})" if details else "")


def _export_notes(t: TargetReport) -> list[str]:
    """How the torch model became the ONNX graph each side's backend imported (one line when both agree)."""
    base, comp = t.baseline.export, t.compressed.export
    if base is None and comp is None:
        return []
    if base == comp:
        return [f"exported to ONNX by the {_export_line(comp or {})}"]
    return [f"{side} exported to ONNX by the {_export_line(e)}" for side, e in (("baseline", base),
                                                                                ("compressed", comp)) if e]
