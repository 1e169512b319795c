"""What a search leaves behind: the front and the best recipe per target, every trial, a page, and plans.

* ``search.json`` (schema ``edgecraft.search/v1``): per target, every finished trial (recipe, measured
  figures, verdicts, which contracts it met), the noise-aware front, the best candidate or, when none
  meets every contract, the closest trial and by how much each contract was missed;
* ``trials.md`` and ``trials.csv``: the table of every trial;
* ``search.html``: per target, accuracy vs speedup (with the latency confidence intervals) and size vs
  speedup, the front connected, the best starred, the contract bounds drawn (matplotlib, inline SVG);
* ``best.<target>.plan.yaml``: a normal plan reproducing the best candidate: ``edgecraft run`` on it
  compiles to the trial's cache key, so it reuses the artifact the search built.
"""

from __future__ import annotations

import csv
import html
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecraft.errors import EXIT_CONTRACT_FAILED, EXIT_OK
from edgecraft.safe_text import clean_text
from edgecraft.search.pareto import Value, front, pick_best
from edgecraft.search.study import SearchOutcome

SEARCH_SCHEMA_ID = "edgecraft.search/v1"


@dataclass
class TargetAnalysis:
    label: str
    records: list[dict[str, Any]]
    front: list[int] = field(default_factory=list)
    front_objectives: list[str] = field(default_factory=list)
    best: int | None = None
    closest: dict[str, Any] | None = None
    plan_file: str | None = None

    def by_number(self, number: int) -> dict[str, Any]:
        return next(r for r in self.records if r["number"] == number)


def _value(record: dict[str, Any], objective: str) -> Value:
    """One objective of a finished trial, lower is better, with its interval (see edgecraft.search.pareto)."""
    if objective.startswith("accuracy"):
        return Value.exact(-(record.get("accuracy") or 0.0))
    if objective.startswith("latency"):
        low, high = record["latency_ratio_ci"]
        return Value(record["latency_ratio"], min(low, record["latency_ratio"]), max(high, record["latency_ratio"]))
    if objective == "memory":
        if record.get("memory_bytes") is None:
            return Value.exact(0.0)
        low, high = record.get("memory_range") or [record["memory_bytes"]] * 2
        return Value(float(record["memory_bytes"]), float(low), float(high))
    if objective == "macs":
        return Value.exact(float(record.get("macs") or 0))
    return Value.exact(float(record["size_bytes"]))


def analyze(outcome: SearchOutcome) -> dict[str, TargetAnalysis]:
    spec = outcome.setup.spec
    out: dict[str, TargetAnalysis] = {}
    for label, records in outcome.records.items():
        # A sampler may propose a recipe again (few categorical choices): it is a cache hit and measured again,
        # but the front and the best count each recipe once, at its first trial.
        first: dict[str, int] = {}
        for r in sorted(records, key=lambda r: r["number"]):
            key = json.dumps(r.get("recipe", {}), sort_keys=True, default=str)
            if r["state"] == "complete" and key in first:
                r["duplicate_of"] = first[key]
            elif r["state"] == "complete":
                first[key] = r["number"]
        complete = [r for r in records if r["state"] == "complete" and "duplicate_of" not in r]
        pct = next((o for o in spec.objective if o.startswith("latency.")), "latency.p50")
        objectives = ["accuracy", pct, "size"]
        if any(r.get("memory_bytes") is not None for r in complete):
            objectives.append("memory")
        analysis = TargetAnalysis(label, sorted(records, key=lambda r: r["number"]), front_objectives=objectives)
        analysis.front = sorted(front({r["number"]: [_value(r, o) for o in objectives] for r in complete}))
        feasible = {r["number"]: [_value(r, o) for o in spec.objective] for r in complete if r["passed"]}
        analysis.best = pick_best(feasible)
        if analysis.best is None:
            analysis.closest = _closest(records)
        out[label] = analysis
    return out


def _closest(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The trial that missed its contracts by the least (sum of relative shortfalls), and per contract the
    trial that came nearest to it."""
    judged = [r for r in records if r.get("verdicts")]
    if not judged:
        return None

    def shortfall(r: dict[str, Any]) -> float:
        # a pruned trial was judged on accuracy only: the contracts it never reached count as missed by 100%
        missing = 1.0 * max(0, len(judged[0]["verdicts"]) - len(r["verdicts"])) if r["state"] == "pruned" else 0.0
        return sum(max(v["violation"], 0.0) for v in r["verdicts"]) + missing

    best = min(judged, key=lambda r: (shortfall(r), r["number"]))
    per_contract: dict[str, dict[str, Any]] = {}
    for r in judged:
        for v in r["verdicts"]:
            seen = per_contract.get(v["name"])
            if seen is None or v["violation"] < seen["violation"]:
                per_contract[v["name"]] = {"contract": v["name"], "trial": r["number"], "measured": v["measured"],
                                           "bound": v["bound"], "unit": v["unit"], "violation": v["violation"],
                                           "detail": v["detail"]}
    missed = [v for v in best["verdicts"] if not v["passed"]]
    return {"trial": best["number"], "recipe": best.get("recipe", {}), "total_shortfall": shortfall(best),
            "missed": [{"contract": v["name"], "measured": v["measured"], "bound": v["bound"], "unit": v["unit"],
                        "relative_shortfall": v["violation"], "detail": v["detail"]} for v in missed],
            "nearest_per_contract": sorted(per_contract.values(), key=lambda c: c["violation"])}


def exit_code(analyses: dict[str, TargetAnalysis]) -> int:
    """0 when every target has a candidate meeting every contract, 1 otherwise; 3 when every trial of a target
    failed with a plugin or runtime error (nothing was judged)."""
    for a in analyses.values():
        if a.records and all(r["state"] == "failed" for r in a.records):
            codes = {r.get("exit_code", 2) for r in a.records}
            if 3 in codes:
                return 3
    return EXIT_OK if analyses and all(a.best is not None for a in analyses.values()) else EXIT_CONTRACT_FAILED


# ------------------------------------------------------------------------------------------ files
def file_label(label: str) -> str:
    """A target label as part of a file name: only [A-Za-z0-9._-], no leading dot, so ``../x`` or ``a/b`` can
    never name a file outside the search's folder; a changed label gets a short hash to stay unique."""
    import hashlib
    import re

    safe = re.sub(r"[^A-Za-z0-9._-]", "_", label).lstrip(".") or "target"
    if safe != label:
        safe += "-" + hashlib.sha256(label.encode()).hexdigest()[:8]
    return safe


def write_best_plan(outcome: SearchOutcome, analysis: TargetAnalysis, out_dir: Path) -> Path | None:
    import yaml

    if analysis.best is None:
        return None
    record = analysis.by_number(analysis.best)
    path = out_dir / f"best.{file_label(analysis.label)}.plan.yaml"
    header = (f"# Written by `edgecraft search {outcome.setup.plan_path}`: trial {record['number']} on "
              f"{analysis.label}, the best candidate meeting every contract.\n"
              f"# Recipe: {json.dumps(record.get('recipe', {}))}\n"
              f"# `edgecraft run {path.name}` rebuilds nothing: it compiles to the trial's cache key "
              f"{record['compiled_key'][:16]}...\n")
    path.write_text(header + yaml.safe_dump(record["plan"], sort_keys=False, allow_unicode=True))
    return path


def _row(r: dict[str, Any], a: TargetAnalysis) -> dict[str, Any]:
    verdicts = r.get("verdicts", [])
    met = [v["name"] for v in verdicts if v["passed"]]
    missed = [v["name"] for v in verdicts if not v["passed"]]
    ci = r.get("latency_ratio_ci")
    return {
        "target": a.label, "trial": r["number"], "state": r["state"],
        "recipe": "; ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in r.get("recipe", {}).items()),
        "accuracy": f"{r['accuracy']:.4f}" if r.get("accuracy") is not None else "",
        "speedup": f"{r['speedup']:.2f}" if r.get("speedup") else "",
        "speedup_ci": f"[{1 / ci[1]:.2f}, {1 / ci[0]:.2f}]" if ci and ci[0] > 0 and ci[1] > 0 else "",
        "size_bytes": r.get("size_bytes", ""), "size_ratio": f"{r['size_ratio']:.2f}" if r.get("size_ratio") else "",
        "memory_bytes": r.get("memory_bytes") or "",
        "contracts_met": f"{len(met)}/{len(verdicts)}" if verdicts else "",
        "missed": ("; ".join(missed) if r["state"] != "failed" else r.get("reason", ""))
        + (f" (same recipe as trial {r['duplicate_of']})" if "duplicate_of" in r else ""),
        "front": "yes" if r["number"] in a.front else "", "best": "yes" if r["number"] == a.best else "",
        "seconds": r.get("seconds", ""),
    }


COLUMNS = ["target", "trial", "state", "recipe", "accuracy", "speedup", "speedup_ci", "size_bytes", "size_ratio",
           "memory_bytes", "contracts_met", "missed", "front", "best", "seconds"]


def write_tables(analyses: dict[str, TargetAnalysis], out_dir: Path) -> list[Path]:
    rows = [_row(r, a) for a in analyses.values() for r in a.records]
    csv_path = out_dir / "trials.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    md_path = out_dir / "trials.md"
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(str(row[c]).replace("|", "\\|") for c in COLUMNS) + " |")
    md_path.write_text("\n".join(lines) + "\n")
    return [csv_path, md_path]


def search_document(outcome: SearchOutcome, analyses: dict[str, TargetAnalysis], code: int) -> dict[str, Any]:
    setup = outcome.setup
    targets = []
    for label, a in analyses.items():
        best = a.by_number(a.best) if a.best is not None else None
        targets.append({
            "target": label,
            "space": [d.describe() for d in setup.dims[label]],
            "trials_finished": len(a.records), "trials_run_now": outcome.ran.get(label, 0),
            "states": {s: sum(1 for r in a.records if r["state"] == s) for s in ("complete", "pruned", "failed")},
            "front_objectives": a.front_objectives, "front": a.front,
            "best": None if best is None else {
                "trial": best["number"], "recipe": best.get("recipe", {}), "plan_file": a.plan_file,
                "accuracy": best.get("accuracy"), "baseline_accuracy": best.get("baseline_accuracy"),
                "speedup": best.get("speedup"), "latency_ratio_ci": best.get("latency_ratio_ci"),
                "size_bytes": best.get("size_bytes"), "size_ratio": best.get("size_ratio"),
                "memory_bytes": best.get("memory_bytes"), "compiled_key": best.get("compiled_key"),
                "artifact": best.get("artifact")},
            "closest": a.closest,
            "trials": [{k: v for k, v in r.items() if k != "plan"} for r in a.records],
        })
    return {"schema": SEARCH_SCHEMA_ID, "plan": str(setup.plan_path), "plan_name": setup.plan.name,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "objective": setup.spec.objective, "trials": setup.spec.trials, "time_budget_s": setup.spec.time_budget_s,
            "sampler": setup.spec.effective_sampler(), "stopped_by_budget": outcome.stopped_by_budget,
            "wall_s": round(outcome.wall_s, 1),
            "trial_seconds": round(sum(r.get("seconds", 0) for rs in outcome.records.values() for r in rs), 1),
            "notes": outcome.notes, "exit_code": code, "targets": targets}


def write_all(outcome: SearchOutcome, out_dir: Path, *, html_page: bool = True) -> tuple[int, list[Path], dict]:
    """Analyse and write every file; returns (exit code, files written, the search.json document)."""
    from edgecraft.verify.report import write_json_atomic

    analyses = analyze(outcome)
    written: list[Path] = []
    for a in analyses.values():
        path = write_best_plan(outcome, a, out_dir)
        if path is not None:
            a.plan_file = str(path)
            written.append(path)
    code = exit_code(analyses)
    document = search_document(outcome, analyses, code)
    write_json_atomic(out_dir / "search.json", document)
    written.insert(0, out_dir / "search.json")
    written += write_tables(analyses, out_dir)
    if html_page:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            outcome.notes.append("search.html not written: matplotlib is missing (pip install 'edgecraft[reports]')")
        else:
            page = out_dir / "search.html"
            page.write_text(html_page_text(outcome, analyses, document))
            written.append(page)
    return code, written, document


# ------------------------------------------------------------------------------------------ HTML
def _bounds(records: list[dict[str, Any]]) -> dict[str, list[tuple[float, str]]]:
    """Contract bounds in the plot's units (speedup, accuracy, size ratio), read from any trial's verdicts."""
    out: dict[str, list[tuple[float, str]]] = {"speedup": [], "accuracy": [], "size": []}
    sample = next((r for r in records if r["state"] == "complete"), None)
    if sample is None:
        return out
    for v in sample["verdicts"]:
        if v["kind"] == "latency" and v["unit"].startswith("speedup"):
            out["speedup"].append((v["bound"], f"speedup ≥ {v['bound']:g}x"))
        elif v["kind"] == "accuracy" and "relative" not in v["unit"] and sample.get("baseline_accuracy") is not None:
            out["accuracy"].append((sample["baseline_accuracy"] - v["bound"],
                                    f"{sample['metric']} ≥ baseline − {v['bound']:g}"))
        elif v["kind"] == "size" and v["unit"] == "size ratio":
            out["size"].append((v["bound"], f"size ratio ≥ {v['bound']:g}x"))
    return out


def target_figure(a: TargetAnalysis) -> Any:
    """Accuracy vs speedup (bars: the latency CI) and size ratio vs speedup; front connected, best starred."""
    from matplotlib.figure import Figure

    complete = [r for r in a.records if r["state"] == "complete"]
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    ax, bx = fig.subplots(1, 2)
    bounds = _bounds(a.records)
    metric = next((r["metric"] for r in complete if r.get("metric")), "accuracy")
    for axis, key, label in ((ax, "accuracy", metric), (bx, "size_ratio", "size ratio (baseline / candidate)")):
        for group, style in (("passed", {"color": "#55a868", "label": "meets every contract"}),
                             ("failed", {"color": "#c44e52", "label": "misses a contract"})):
            pts = [r for r in complete if r["passed"] == (group == "passed") and r.get(key) is not None]
            if not pts:
                continue
            xs = [r["speedup"] for r in pts]
            ys = [r[key] for r in pts]
            lo = [max(0.0, r["speedup"] - 1 / r["latency_ratio_ci"][1]) for r in pts]
            hi = [max(0.0, 1 / r["latency_ratio_ci"][0] - r["speedup"]) for r in pts]
            axis.errorbar(xs, ys, xerr=[lo, hi], fmt="o", ms=6, alpha=0.8, capsize=2, mec="black", mew=0.5,
                          **style)
        on_front = sorted((r for r in complete if r["number"] in a.front and r.get(key) is not None),
                          key=lambda r: r["speedup"])
        if on_front:
            axis.plot([r["speedup"] for r in on_front], [r[key] for r in on_front], color="#4c72b0", lw=1.2,
                      ls="-", marker="s", mfc="none", ms=11, label="noise-aware front")
        if a.best is not None:
            best = a.by_number(a.best)
            axis.scatter([best["speedup"]], [best[key]], marker="*", s=320, color="gold", edgecolor="black",
                         zorder=5, label=f"best: trial {best['number']}")
        styles = iter(["--", ":", "-.", (0, (5, 1))] * 3)
        for x, text in bounds["speedup"]:
            axis.axvline(x, color="crimson", ls=next(styles), lw=1.1, label=f"bound: {text}")
        for y, text in bounds["accuracy" if key == "accuracy" else "size"]:
            axis.axhline(y, color="purple", ls=next(styles), lw=1.1, label=f"bound: {text}")
        axis.set_xlabel("speedup vs baseline (bar: latency CI)")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=7.5, ncol=2, frameon=False)
    ax.set_title(f"{a.label}: {metric} vs speedup")
    bx.set_title(f"{a.label}: size ratio vs speedup")
    return fig


def _svg(fig: Any) -> str:
    import matplotlib

    with matplotlib.rc_context({"svg.fonttype": "none", "font.size": 9}):
        buf = io.StringIO()
        fig.savefig(buf, format="svg")
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _e(text: object) -> str:
    return html.escape(str(text))


def html_page_text(outcome: SearchOutcome, analyses: dict[str, TargetAnalysis], document: dict[str, Any]) -> str:
    import matplotlib
    from edgecraft.verify.reports.html import CSS as REPORT_CSS

    CSS = REPORT_CSS + ".trials td,.trials th{font-size:.75em;padding:.2em .4em}\n"

    code = document["exit_code"]
    status = "pass" if code == 0 else "fail"
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>edgecraft search: "
             f"{_e(document['plan_name'])}</title><style>{CSS}</style></head><body>",
             f"<h1>edgecraft search: {_e(document['plan_name'])}</h1>",
             f"<p class='banner {status}'><b>{'FOUND' if code == 0 else 'NOT FOUND'}</b>: "
             + ("a candidate meets every contract on every target" if code == 0
                else "no candidate meets every contract on some target") + f" (exit code {code})</p>",
             f"<p>plan <code>{_e(document['plan'])}</code>; objectives {_e(', '.join(document['objective']))}; "
             f"sampler {_e(document['sampler'])}; {document['wall_s']} s in this run, {document['trial_seconds']} s of "
             "trials in all"
             f"{'; stopped by the time budget' if document['stopped_by_budget'] else ''}.</p>",
             "<p><small>Front: a trial is on it unless another is at least as good on every objective and better on "
             "one <em>outside the confidence interval</em> (latency: the bootstrap CI of the candidate/baseline "
             "ratio from the trial's own interleaved rounds). Best: meets every contract; objectives in order, "
             "ties within the interval go to the next objective.</small></p>"]
    for note in document["notes"]:
        parts.append(f"<p><small>note: {_e(note)}</small></p>")
    with matplotlib.rc_context({"font.size": 9}):
        for label, a in analyses.items():
            entry = next(t for t in document["targets"] if t["target"] == label)
            parts.append(f"<h2>{_e(label)}</h2>")
            if any(r["state"] == "complete" for r in a.records):
                parts.append(_svg(target_figure(a)))
            if entry["best"]:
                b = entry["best"]
                parts.append(f"<p class='banner pass'>best: trial {b['trial']}: {_e(json.dumps(b['recipe']))}; "
                             f"speedup {b['speedup']:.2f}x, size ratio {b['size_ratio']:.2f}x"
                             + (f", {_e(a.by_number(b['trial'])['metric'])} {b['accuracy']:.4f}"
                                if b.get("accuracy") is not None else "")
                             + f"; plan <code>{_e(b['plan_file'])}</code></p>")
            elif a.closest:
                c = a.closest
                missed = "; ".join(f"{m['contract']}: {m['detail']}" for m in c["missed"]) or "(pruned)"
                parts.append(f"<p class='banner fail'>no trial meets every contract; closest: trial {c['trial']} "
                             f"({_e(json.dumps(c['recipe']))}): {_e(missed)}</p>")
                parts.append("<ul>" + "".join(
                    f"<li>{_e(n['contract'])}: nearest trial {n['trial']}, {_e(n['detail'])}</li>"
                    for n in c["nearest_per_contract"]) + "</ul>")
            rows = [_row(r, a) for r in a.records]
            cols = [c for c in COLUMNS if c != "target" and any(row[c] != "" for row in rows)]
            parts.append("<table class='trials'><tr>" + "".join(f"<th>{_e(c)}</th>" for c in cols) + "</tr>" + "".join(
                f"<tr class='{'pass' if row['best'] else ('fail' if row['state'] != 'complete' else '')}'>"
                + "".join(f"<td>{_e(row[c])}</td>" for c in cols) + "</tr>" for row in rows) + "</table>")
    parts.append("</body></html>")
    return clean_text("\n".join(parts) + "\n")
