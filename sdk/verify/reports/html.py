"""A self-contained HTML report: tables plus, per target, accuracy vs latency vs size with the bounds drawn.

Pictures are matplotlib figures embedded as inline SVG (no external files, no scripts, no network), so
the page can be archived as a CI artifact and opened anywhere. matplotlib is imported lazily: it is
only needed for ``--html`` (extra ``edgecraft[reports]``).
"""

from __future__ import annotations

import html
import io
from typing import Any

from edgecraft.errors import InputError
from edgecraft.safe_text import clean_text
from edgecraft.verify.contracts import Verdict
from edgecraft.verify.report import Report, TargetReport
from edgecraft.verify.reports.resources_rows import resource_notes, resource_rows

COLORS = {"baseline": "#4c72b0", "compressed": "#dd8452", "reference": "#55a868"}

#: Status marks from the text fonts every browser has (DejaVu, Liberation): colour emoji render as
#: empty boxes on machines without an emoji font (headless CI runners, most Linux servers).
HTML_ICON = {"pass": "\u2713", "fail": "\u2717", "inconclusive": "?"}


def check_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise InputError("--html needs matplotlib for its plots, which is not installed",
                         hint="pip install 'edgecraft[reports]'") from exc


def _points(t: TargetReport) -> dict[str, dict[str, Any]]:
    pts = {"baseline": {"metrics": t.baseline.metrics, "lat": t.baseline.latency_ms, "size": t.baseline.size_bytes},
           "compressed": {"metrics": t.compressed.metrics, "lat": t.compressed.latency_ms,
                          "size": t.compressed.size_bytes}}
    if t.reference is not None:
        pts["reference"] = {"metrics": t.reference.metrics, "lat": t.reference.latency_ms,
                            "size": t.reference.size_bytes}
    return pts


def _accuracy_metric(t: TargetReport) -> str | None:
    for v in t.contracts:
        if v.metric and v.metric in t.baseline.metrics:  # only accuracy verdicts name a metric
            return v.metric
    return next(iter(t.baseline.metrics), None)


def _latency_bounds(t: TargetReport) -> list[tuple[float, str]]:
    """Latency bounds as milliseconds on the plot's axis, with a label."""
    out: list[tuple[float, str]] = []
    for v in t.contracts:
        if v.kind != "latency":
            continue
        pct = v.percentile or "p50"
        if v.unit.startswith("ms"):
            out.append((v.bound, f"{pct} ≤ {v.bound:g} ms"))
        elif v.unit.startswith("speedup"):
            out.append((getattr(t.baseline.latency_ms, pct) / v.bound, f"{pct} speedup ≥ {v.bound:g}x"))
        elif v.origin == "reference" and t.reference is not None and t.reference.latency_ms is not None:
            ref = getattr(t.reference.latency_ms, pct)
            out.append((ref * (1 + v.bound / 100), f"{pct} ≤ reference +{v.bound:g}%"))
    return out


def _accuracy_bounds(t: TargetReport) -> list[tuple[float, str]]:
    out: list[tuple[float, str]] = []
    for v in t.contracts:
        if v.kind != "accuracy" or not v.metric:
            continue
        if v.origin == "reference" and t.reference is not None and v.metric in t.reference.metrics:
            out.append((t.reference.metrics[v.metric] - v.bound, f"{v.metric} ≥ reference − {v.bound:g}"))
        elif v.origin == "contract" and "relative" not in v.unit and v.metric in t.baseline.metrics:
            out.append((t.baseline.metrics[v.metric] - v.bound, f"{v.metric} ≥ baseline − {v.bound:g}"))
        elif v.origin == "contract" and v.metric in t.baseline.metrics:
            base = t.baseline.metrics[v.metric]
            out.append((base - abs(base) * v.bound, f"{v.metric} ≥ baseline × (1 − {v.bound:g})"))
    return out


def _size_bounds(t: TargetReport) -> list[tuple[float, str]]:
    out: list[tuple[float, str]] = []
    for v in t.contracts:
        if v.kind != "size":
            continue
        if v.unit == "bytes":
            out.append((v.bound, f"≤ {v.bound:,.0f} B"))
        elif v.unit == "size ratio":
            out.append((t.baseline.size_bytes / v.bound, f"ratio ≥ {v.bound:g}x"))
        elif v.origin == "reference" and t.reference is not None:
            out.append((t.reference.size_bytes * (1 + v.bound / 100), f"≤ reference +{v.bound:g}%"))
    return out


def _memory_points(t: TargetReport) -> dict[str, float]:
    """Peak memory in bytes per model that has one (empty when memory was not measured)."""
    out: dict[str, float] = {}
    for name, m in (("baseline", t.baseline.memory), ("compressed", t.compressed.memory)):
        if m is not None and m.measured and m.peak_bytes is not None:
            out[name] = float(m.peak_bytes)
    if out and t.reference is not None and t.reference.memory_bytes is not None:
        out["reference"] = float(t.reference.memory_bytes)
    return out


def _memory_bounds(t: TargetReport) -> list[tuple[float, str]]:
    out: list[tuple[float, str]] = []
    base = t.baseline.memory.peak_bytes if t.baseline.memory is not None else None
    for v in t.contracts:
        if v.kind != "memory":
            continue
        if v.unit.startswith("bytes"):
            out.append((v.bound, f"≤ {v.bound / 2**20:,.2f} MiB"))
        elif v.unit == "peak memory ratio" and base:
            out.append((base / v.bound, f"ratio ≥ {v.bound:g}x"))
        elif v.origin == "reference" and t.reference is not None and t.reference.memory_bytes:
            out.append((t.reference.memory_bytes * (1 + v.bound / 100), f"≤ reference +{v.bound:g}%"))
    return out


def target_figure_svg(t: TargetReport) -> str:
    """The target's figure as inline SVG (text kept as text: small and searchable)."""
    import matplotlib

    with matplotlib.rc_context({"svg.fonttype": "none", "font.size": 9}):
        fig = target_figure(t)
        buf = io.StringIO()
        fig.savefig(buf, format="svg")
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]


def target_figure(t: TargetReport) -> Any:
    """Two panels: accuracy vs latency (marker area ∝ size; p50 dot, line to p95) and size, bounds dashed."""
    import matplotlib
    import matplotlib.ticker
    from matplotlib.figure import Figure

    pts = _points(t)
    metric = _accuracy_metric(t)
    with matplotlib.rc_context({"font.size": 9}):
        mem = _memory_points(t)
        fig = Figure(figsize=(12 if mem else 10, 4.4), layout="constrained")
        if mem:  # peak memory next to size: what a board's RAM and flash each have to hold
            ax, bx, mx = fig.subplots(1, 3, width_ratios=[3, 2, 2])
        else:
            ax, bx = fig.subplots(1, 2, width_ratios=[3, 2])
        max_size = max(p["size"] for p in pts.values()) or 1
        for name, p in pts.items():
            lat = p["lat"]
            y = p["metrics"].get(metric, float("nan")) if metric else 0.0
            if lat is None:
                continue
            ax.plot([lat.p50, lat.p95], [y, y], color=COLORS[name], lw=2, alpha=0.45)
            ax.scatter([lat.p50], [y], s=60 + 600 * p["size"] / max_size, color=COLORS[name], alpha=0.8,
                       edgecolor="black", zorder=3, label=f"{name}: p50 {lat.p50:.3g} ms, {p['size'] / 1e3:,.0f} kB")
        styles = iter(["--", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1))] * 4)
        for x, label in _latency_bounds(t):
            ax.axvline(x, color="crimson", ls=next(styles), lw=1.2, label=f"bound: {label}")
        for y, label in _accuracy_bounds(t):
            ax.axhline(y, color="purple", ls=next(styles), lw=1.2, label=f"bound: {label}")
        ax.set_xscale("log")  # latencies span orders of magnitude (and shared machines add long tails)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xlabel("latency (ms, log scale): dot p50, bar to p95")
        ax.set_ylabel(metric or "(no accuracy metric)")
        ax.set_title(f"{t.target}: accuracy vs latency (marker area ∝ size)")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=7.5, markerscale=0.4, ncol=2,
                  frameon=False)
        ax.grid(alpha=0.3, which="both")
        names = list(pts)
        bx.bar(names, [pts[n]["size"] / 1e3 for n in names], color=[COLORS[n] for n in names], edgecolor="black")
        for y, label in _size_bounds(t):
            bx.axhline(y / 1e3, color="crimson", ls=next(styles), lw=1.2, label=f"bound: {label}")
        if _size_bounds(t):
            bx.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), fontsize=7.5, frameon=False)
        bx.set_ylabel("artifact size (kB)")
        bx.set_title("size")
        bx.grid(axis="y", alpha=0.3)
        if mem:
            mnames = list(mem)
            mx.bar(mnames, [mem[n] / 2**20 for n in mnames], color=[COLORS[n] for n in mnames], edgecolor="black")
            for name, m in (("baseline", t.baseline.memory), ("compressed", t.compressed.memory)):
                if name in mem and m is not None and m.min_bytes is not None and m.max_bytes is not None:
                    mid = mem[name] / 2**20
                    mx.errorbar([mnames.index(name)], [mid], yerr=[[mid - m.min_bytes / 2**20],
                                [m.max_bytes / 2**20 - mid]], color="black", capsize=4)
            for y, label in _memory_bounds(t):
                mx.axhline(y / 2**20, color="crimson", ls=next(styles), lw=1.2, label=f"bound: {label}")
            if _memory_bounds(t):
                mx.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), fontsize=7.5, frameon=False)
            mx.set_ylabel("peak memory added (MiB; bar: range)")
            mx.set_title("peak memory")
            mx.grid(axis="y", alpha=0.3)
    return fig


def _e(text: object) -> str:
    return html.escape(str(text))


def _verdict_row(v: Verdict) -> str:
    ci = (f"[{v.ci_low:.4g}, {v.ci_high:.4g}] ({100 * v.confidence:.0f}%)"
          if v.ci_low is not None and v.ci_high is not None and v.confidence is not None else "")
    status = v.status if v.status != "inconclusive" else f"inconclusive → {'pass' if v.passed else 'fail'}"
    return (f"<tr class='{_e(v.status)}'><td>{_e(v.name)}</td><td>{HTML_ICON[v.status]} {_e(status)}</td>"
            f"<td>{v.measured:.4g} {_e(v.unit)}</td><td>{v.bound:.4g}</td><td>{_e(ci)}</td>"
            f"<td>{_e(v.detail)}{'<br><em>' + _e(v.note) + '</em>' if v.note else ''}</td></tr>")


def _measure_table(t: TargetReport) -> str:
    cols = ["baseline", "compressed"] + (["reference"] if t.reference is not None else [])
    pts = _points(t)
    rows = []
    for name in t.baseline.metrics:
        rows.append([name] + [f"{pts[c]['metrics'].get(name, float('nan')):.4f}" for c in cols])
    for pct in ("p50", "p95", "p99"):
        rows.append([f"latency {pct} (ms, wall clock)"]
                    + [f"{getattr(pts[c]['lat'], pct):.3f}" if pts[c]["lat"] else "–" for c in cols])
    rows.append(["size (bytes)"] + [f"{pts[c]['size']:,}" for c in cols])
    for label, base, comp, ratio in resource_rows(t):
        row = [label, base, comp] + (["–"] if t.reference is not None else [])
        if ratio:
            row[2] += f" ({ratio})"
        rows.append(row)
    head = "".join(f"<th>{_e(c)}</th>" for c in ["", *cols])
    body = "".join("<tr>" + "".join(f"<td>{_e(x)}</td>" for x in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:.8em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;
vertical-align:top;font-size:.9em}th{background:#f3f3f3}tr.fail td{background:#fdecea}
tr.inconclusive td{background:#fff8e1}.banner{padding:.6em 1em;border-radius:6px;font-size:1.2em}
.pass{background:#e7f5e9}.fail{background:#fdecea}.inconclusive{background:#fff8e1}svg{max-width:100%;height:auto}
"""


def html_report(report: Report) -> str:
    """The whole page as one string."""
    check_matplotlib()
    status = report.status or ("pass" if report.passed else "fail")
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>edgecraft: {_e(report.plan_name)}"
             f"</title><style>{CSS}</style></head><body>",
             f"<h1>edgecraft report: {_e(report.plan_name)}</h1>",
             f"<p class='banner {status}'>{HTML_ICON[status]} <b>{'PASSED' if report.passed else 'FAILED'}</b> "
             f"(status {status}{', exit code ' + str(report.exit_code) if report.exit_code is not None else ''})</p>",
             f"<p>plan <code>{_e(report.plan)}</code>, edgecraft {_e(report.edgecraft_version)}, {_e(report.created)}"
             + (f", reference <code>{_e(report.reference_report)}</code>" if report.reference_report else "")
             + "</p>"]
    if report.gate:
        parts.append(f"<p>Latency verdicts: {100 * report.gate.get('confidence', 0.95):.0f}% overall confidence "
                     f"(bootstrap intervals over interleaved rounds, each look of the sequential check at the stricter "
                     f"level its verdict shows); inconclusive counts as "
                     f"<b>{_e(report.gate.get('inconclusive', 'fail'))}</b>.</p>")
    for t in report.targets:
        tstatus = t.status or ("pass" if t.passed else "fail")
        parts.append(f"<h2>{HTML_ICON[tstatus]} {_e(t.target)} <small>({_e(t.backend)}, target {_e(t.target_name)}"
                     f"{', EMULATED device' if t.emulated else ''})</small></h2>")
        parts.append(target_figure_svg(t))
        parts.append(_measure_table(t))
        notes = resource_notes(t)
        if notes:
            parts.append("<ul>" + "".join(f"<li><small>{_e(n)}</small></li>" for n in notes) + "</ul>")
        if t.reference is not None:
            parts.append(f"<p>Reference artifact <code>{_e(t.reference.artifact)}</code>: {_e(t.reference.how)}.</p>")
        if t.contracts:
            parts.append("<table><tr><th>verdict</th><th>status</th><th>measured</th><th>bound</th>"
                         "<th>confidence interval</th><th>detail</th></tr>"
                         + "".join(_verdict_row(v) for v in t.contracts) + "</table>")
        parts.append(f"<p><small>artifact <code>{_e(t.artifact)}</code></small></p>")
    for failed in report.errored:  # not measured: the error it stopped with
        parts.append(f"<h2>{HTML_ICON['fail']} {_e(failed.target)} <small>({_e(failed.backend)}, target "
                     f"{_e(failed.target_name)}): error, exit {failed.exit_code}</small></h2>"
                     f"<p class='fail'><b>{_e(failed.error)}</b>: {_e(failed.message)}"
                     + (f"<br>hint: {_e(failed.hint)}" if failed.hint else "") + "</p>")
    if report.integration_errors:
        parts.append(f"<h2>Integration errors</h2><p>Every verdict above stands; these lifecycle hooks raised (exit "
                     f"code {_e(report.exit_code)}):</p><table><tr><th>plugin</th><th>distribution</th><th>hook</th>"
                     "<th>error</th><th>best effort</th></tr>" + "".join(
                         f"<tr><td>{_e(e.plugin)}</td><td>{_e(e.distribution)} {_e(e.version)}</td><td>{_e(e.hook)}"
                         f"</td><td>{_e(e.error)}</td><td>{'yes' if e.best_effort else 'no'}</td></tr>"
                         for e in report.integration_errors) + "</table>")
    parts.append("</body></html>")
    return clean_text("\n".join(parts) + "\n")  # control characters from names: escaped, visible
