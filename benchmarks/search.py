"""Recipe search: edgecraft's search (multi-objective TPE, constraints, early stopping) vs random search.

On the bundled digits example (``examples/digits/plan.yaml``, ``ort-cpu``), both searches get the same
trial budget and the same space (pruning on/off, its ratio in [0.3, 0.75] and importance, int8
static/dynamic), and both start from the hand-written plan's own recipe (trial 0), so the comparison
is about what the sampler does with the remaining trials.

Why ``isolate: true`` (each trial in a child process): structured pruning of the digits ResNet
sometimes kills the process during fine-tuning (``free(): invalid next size`` / a segfault in torch's
backward, at ratios 0.538, 0.585 and 0.604 with l2 and round_to 8; reproduced with a plain
``edgecraft run``, so it is the pruning step's, not the search's). In the search's own process such a
crash ends the search (a rerun resumes it); isolated, it is one failed trial.

Figures:

* ``hypervolume_ratio_vs_random`` (goal >= 1.1): hypervolume of each search's candidates that meet the
  accuracy contract, in normalized objectives (candidate/baseline p50 latency, candidate/baseline size,
  accuracy drop / allowed drop, clipped at 0), reference point (1, 1, 1) = the baseline's latency and
  size at the largest allowed drop; the box is the unit cube;
* ``best_speedup``, ``best_size_ratio``, ``best_accuracy_drop``: edgecraft's best candidate meeting every
  contract;
* ``best_vs_example_latency_ratio`` (goal <= 0.9): its p50 latency over the hand-written recipe's, each
  normalized by the baseline timed in its own interleaved rounds;
* ``wall_s`` (both searches), ``int8_features`` and ``threads``.

    nice python benchmarks/search.py --json OUT [--trials 8] [--epochs 3] [--transformer-trials 5 [--skip-digits]]

``--transformer-trials N`` also searches the transformer example (``examples/transformer/plan.yaml``,
``ort-cpu``, the strategies' default space) with edgecraft's sampler only (no random baseline: minutes
per trial on a 2-core machine).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "digits" / "plan.yaml"


def search_plan(folder: Path, trials: int, epochs: int) -> Path:
    plan = yaml.safe_load(EXAMPLE.read_text())
    plan["model"]["factory"] = str(EXAMPLE.parent / "model.py") + ":build"
    plan["targets"] = [t for t in plan["targets"] if t.get("target") == "ort-cpu"]
    plan["steps"][0]["params"]["epochs"] = epochs
    plan["search"] = {
        "objective": ["latency.p50", "size", "accuracy"], "trials": trials, "isolate": True,
        "space": {"steps[pruning].enabled": {"choices": [True, False]},
                  "steps[pruning].params.ratio": {"low": 0.3, "high": 0.75},
                  "steps[pruning].params.importance": {"choices": ["l1", "l2"]},
                  "steps[quantization].params.mode": {"choices": ["static", "dynamic"]}}}
    path = folder / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


def normalized(records: list[dict[str, Any]], max_drop: float) -> list[tuple[float, float, float]]:
    pts = []
    for r in records:
        if r["state"] != "complete":
            continue
        acc = next((v for v in r["verdicts"] if v["kind"] == "accuracy"), None)
        if acc is None or not acc["passed"]:
            continue
        pts.append((r["latency_ratio"], r["size_bytes"] / r["baseline_size_bytes"],
                    max(0.0, acc["measured"]) / max_drop))
    return pts


def transformer(registry: Any, work: Path, cache: Path, trials: int) -> dict[str, Any]:
    """edgecraft's search on the transformer example (ort-cpu, the strategies' default space)."""
    from edgecraft.search.report import analyze
    from edgecraft.search.study import run_search, setup_search

    plan = ROOT / "examples" / "transformer" / "plan.yaml"
    t0 = time.monotonic()
    setup = setup_search(plan, registry, targets=["ort-cpu"], trials=trials)
    outcome = run_search(setup, work / "transformer", cache_dir=cache,
                         log=lambda m: print(f"[transformer] {m}", file=sys.stderr, flush=True))
    a = analyze(outcome)["ort-cpu"]
    best = a.by_number(a.best) if a.best is not None else None
    return {"trials": trials, "space": [d.describe() for d in setup.dims["ort-cpu"]],
            "best_recipe": best.get("recipe") if best else None, "best_speedup": best["speedup"] if best else None,
            "best_size_ratio": best["size_ratio"] if best else None,
            "best_accuracy_drop": (best["baseline_accuracy"] - best["accuracy"]) if best else None,
            "closest": a.closest, "front": a.front, "wall_s": time.monotonic() - t0,
            "trials_table": [{k: r.get(k) for k in ("number", "state", "recipe", "speedup", "size_ratio", "accuracy",
                                                    "passed", "seconds")} for r in a.records]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3, help="pruning fine-tuning epochs (the example's: 3)")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--work", type=Path, default=None,
                        help="folder of the studies (default: a new temporary one); rerun with the same folder to "
                             "resume after a crash (finished trials are kept)")
    parser.add_argument("--transformer-trials", type=int, default=0,
                        help="also search examples/transformer/plan.yaml on ort-cpu (its default space) with this "
                             "many trials, edgecraft's sampler only (0: skip)")
    parser.add_argument("--skip-digits", action="store_true", help="only the transformer search")
    args = parser.parse_args()

    from edgecraft.cpu import int8_features
    from edgecraft.logging_setup import quiet_runtimes
    from edgecraft.registry import build_registry
    from edgecraft.search.pareto import hypervolume
    from edgecraft.search.report import analyze
    from edgecraft.search.study import run_search, setup_search

    quiet_runtimes()
    work = args.work or Path(tempfile.mkdtemp(prefix="edgecraft-search-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    cache = args.cache_dir or work / "cache"
    plan_path = search_plan(work, args.trials, args.epochs)
    registry = build_registry()
    load_start = os.getloadavg()[0]
    results: dict[str, Any] = {}
    started = time.monotonic()
    figures: dict[str, Any] = {}
    if args.transformer_trials:
        figures["transformer"] = transformer(registry, work, cache, args.transformer_trials)
    if args.skip_digits:
        args.json.write_text(json.dumps(figures, indent=2, default=str))
        print(json.dumps(figures, indent=2, default=str))
        return 0
    for name, sampler in (("edgecraft", None), ("random", "random")):
        setup = setup_search(plan_path, registry)
        t0 = time.monotonic()
        outcome = run_search(setup, work / name, cache_dir=cache, sampler_name=sampler,
                             log=lambda m, n=name: print(f"[{n}] {m}", file=sys.stderr, flush=True))
        analysis = analyze(outcome)["ort-cpu"]
        max_drop = next(c.max_drop for c in setup.plan.contracts if c.kind == "accuracy")
        results[name] = {"outcome": outcome, "analysis": analysis, "wall_s": time.monotonic() - t0,
                         "hv": hypervolume(normalized(analysis.records, max_drop), (1.0, 1.0, 1.0))}
    ours, rnd = results["edgecraft"], results["random"]
    a = ours["analysis"]
    best = a.by_number(a.best) if a.best is not None else None
    example = next((r for r in a.records if r.get("from_plan") and r["state"] == "complete"), None)
    figures = {
        **figures, "trials": args.trials, "pruning_epochs": args.epochs,
        "hypervolume_edgecraft": ours["hv"], "hypervolume_random": rnd["hv"],
        "hypervolume_ratio_vs_random": ours["hv"] / rnd["hv"] if rnd["hv"] > 0 else None,
        "best_trial": best["number"] if best else None, "best_recipe": best.get("recipe") if best else None,
        "best_speedup": best["speedup"] if best else None,
        "best_size_ratio": best["size_ratio"] if best else None,
        "best_accuracy_drop": (best["baseline_accuracy"] - best["accuracy"]) if best else None,
        "example_speedup": example["speedup"] if example else None,
        "best_vs_example_latency_ratio": (best["latency_ratio"] / example["latency_ratio"]
                                          if best and example else None),
        "random_best_speedup": None, "pruned_trials_edgecraft": sum(r["state"] == "pruned" for r in a.records),
        "pruned_trials_random": sum(r["state"] == "pruned" for r in rnd["analysis"].records),
        "trials_run_now_edgecraft": ours["outcome"].ran["ort-cpu"],
        "trials_run_now_random": rnd["outcome"].ran["ort-cpu"],
        "trial_seconds_edgecraft": sum(r.get("seconds", 0) for r in a.records),
        "trial_seconds_random": sum(r.get("seconds", 0) for r in rnd["analysis"].records),
        "wall_s_edgecraft": ours["wall_s"], "wall_s_random": rnd["wall_s"], "wall_s": time.monotonic() - started,
        "int8_features": int8_features(), "threads": ours["outcome"].setup.plan.latency.threads,
        "cores": os.cpu_count(), "loadavg_start": load_start, "loadavg_end": os.getloadavg()[0],
        "trials_table": {name: [{k: r.get(k) for k in ("number", "state", "recipe", "speedup", "size_ratio",
                                                       "accuracy", "passed", "seconds")}
                                for r in res["analysis"].records] for name, res in results.items()},
    }
    rb = rnd["analysis"]
    if rb.best is not None:
        figures["random_best_speedup"] = rb.by_number(rb.best)["speedup"]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2, default=str))
    for key, value in figures.items():
        if key != "trials_table":
            print(f"{key:32s} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
