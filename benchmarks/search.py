"""Recipe search: edgecraft's search (its default sampler, constraints, early stopping) vs random search.

On the bundled digits example (``examples/digits/plan.yaml``, ``ort-cpu``), both searches get the same
trial budget and the same space, the one a user gets without writing ``search.space``: each strategy's
default space (pruning on/off, ratio 0.2-0.8, importance l1/l2, fine-tuning epochs from the plan's 3
to 9; int8 on/off, static/dynamic, per-channel or not). Both start from the hand-written plan's own
recipe (trial 0), so the comparison is about what the sampler does with the remaining trials; both
use the same early stop after the torch stage and the same shared torch-stage results.

Trials run in the search's own process (``isolate: false``, the default), which is what lets them
share torch-stage results (a pruning result feeds every int8 variant after it) and the baseline's
evaluation. Earlier runs of this benchmark used ``isolate: true`` because structured pruning above
ratio ~0.5 killed the process during fine-tuning (``free(): invalid next size`` / segfaults): that was
oneDNN's strided 1x1 convolution weight gradient on inputs with fewer than 16 channels (a pruned
ResNet shortcut), not the pruning step nor the search, and ``edgecraft.torchkit.onednn_guard`` now
routes those convolutions around it during training. ``search.isolate`` stays a plan option for
recipes that may still crash natively (a runtime or a plugin of someone else's): such a crash then
fails one trial instead of ending the search; ``--isolate`` here turns it on.

Figures:

* ``hypervolume_ratio_vs_random`` (goal >= 1.1): hypervolume of each search's candidates that meet the
  accuracy contract, in normalized objectives (candidate/baseline p50 latency, candidate/baseline size,
  accuracy drop / allowed drop, clipped at 0), reference point (1, 1, 1) = the baseline's latency and
  size at the largest allowed drop; the box is the unit cube;
* ``best_speedup``, ``best_size_ratio``, ``best_accuracy_drop``: edgecraft's best candidate meeting every
  contract;
* ``best_vs_example_latency_ratio`` (goal <= 0.9): its p50 latency over the hand-written recipe's, each
  normalized by the baseline timed in its own interleaved rounds;
* ``wall_s`` (both searches), ``int8_features`` and ``threads``;
* what the budget bought: per search, trials stopped after the torch stage (``pruned_trials_*``) and
  their mean seconds against complete trials (the int8 build and timing they skipped), trials whose
  pruning result came from an earlier trial (``torch_stage_reused_*``), repeated recipes (cache hits).

    nice python benchmarks/search.py --json OUT [--trials 12] [--epochs 3] [--isolate]
                                     [--transformer-trials 5 [--skip-digits]]

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
# Run as a script, this folder is sys.path[0], and its transformers.py (a sibling benchmark) would shadow
# the transformers package the transformer example's model source imports.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
EXAMPLE = ROOT / "examples" / "digits" / "plan.yaml"


def search_plan(folder: Path, trials: int, epochs: int, isolate: bool, smoke: bool = False) -> Path:
    """The example plan on ort-cpu with a ``search`` section and no ``space``: the strategies' defaults.

    ``smoke``: 256 training and 64 test images, 4 timed rounds (the same search, seconds per trial)."""
    plan = yaml.safe_load(EXAMPLE.read_text())
    if smoke:
        for name, size in (("digits-train", 256), ("digits-test", 64)):
            plan["data"][name]["max_samples"] = size
        plan["latency"] = {**plan.get("latency", {}), "rounds": 4, "warmup": 5}
    plan["model"]["factory"] = str(EXAMPLE.parent / "model.py") + ":build"
    plan["targets"] = [t for t in plan["targets"] if t.get("target") == "ort-cpu"]
    plan["steps"][0]["params"]["epochs"] = epochs
    plan["search"] = {"objective": ["latency.p50", "size", "accuracy"], "trials": trials, "isolate": isolate}
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


def budget_figures(results: dict[str, Any]) -> dict[str, Any]:
    """Per search: what early stopping and shared results saved (from the trial records)."""
    out: dict[str, Any] = {}
    for name, res in results.items():
        records = res["analysis"].records
        pruned = [r["seconds"] for r in records if r["state"] == "pruned"]
        complete = [r["seconds"] for r in records if r["state"] == "complete"]
        out[f"feasible_trials_{name}"] = sum(r["state"] == "complete" and bool(r.get("passed")) for r in records)
        out[f"pruned_trials_{name}"] = len(pruned)
        out[f"pruned_trial_mean_s_{name}"] = sum(pruned) / len(pruned) if pruned else None
        out[f"complete_trial_mean_s_{name}"] = sum(complete) / len(complete) if complete else None
        out[f"failed_trials_{name}"] = sum(r["state"] == "failed" for r in records)
        out[f"torch_stage_reused_{name}"] = sum(bool(r.get("torch_stage_reused")) for r in records)
        out[f"repeated_recipes_{name}"] = sum("duplicate_of" in r for r in records)  # run anyway (resumed studies)
        out[f"baseline_built_{name}"] = sum(r.get("baseline_cached") is False for r in records)
    return out


def transformer(registry: Any, work: Path, cache: Path, trials: int, budget_s: float | None) -> dict[str, Any]:
    """edgecraft's search on the transformer example (ort-cpu, the strategies' default space); ``budget_s``:
    no trial starts after it (a trial in progress finishes)."""
    from edgecraft.search.report import analyze
    from edgecraft.search.study import run_search, setup_search

    plan = ROOT / "examples" / "transformer" / "plan.yaml"
    t0 = time.monotonic()
    setup = setup_search(plan, registry, targets=["ort-cpu"], trials=trials, time_budget_s=budget_s)
    outcome = run_search(setup, work / "transformer", cache_dir=cache,
                         log=lambda m: print(f"[transformer] {m}", file=sys.stderr, flush=True))
    a = analyze(outcome)["ort-cpu"]
    best = a.by_number(a.best) if a.best is not None else None
    return {"trials": trials, "trials_finished": len(a.records), "stopped_by_budget": outcome.stopped_by_budget,
            "time_budget_s": budget_s, "space": [d.describe() for d in setup.dims["ort-cpu"]],
            "best_recipe": best.get("recipe") if best else None, "best_speedup": best["speedup"] if best else None,
            "best_size_ratio": best["size_ratio"] if best else None,
            "best_accuracy_drop": (best["baseline_accuracy"] - best["accuracy"]) if best else None,
            "closest": a.closest, "front": a.front, "wall_s": time.monotonic() - t0,
            "trials_table": [{k: r.get(k) for k in ("number", "state", "recipe", "speedup", "size_ratio", "accuracy",
                                                    "passed", "seconds")} for r in a.records]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=3, help="pruning fine-tuning epochs (the example's: 3)")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--work", type=Path, default=None,
                        help="folder of the studies (default: a new temporary one); rerun with the same folder to "
                             "resume after a crash (finished trials are kept)")
    parser.add_argument("--transformer-trials", type=int, default=0,
                        help="also search examples/transformer/plan.yaml on ort-cpu (its default space) with this "
                             "many trials, edgecraft's sampler only (0: skip)")
    parser.add_argument("--transformer-budget", type=float, default=None,
                        help="seconds after which the transformer search starts no new trial")
    parser.add_argument("--skip-digits", action="store_true", help="only the transformer search")
    parser.add_argument("--isolate", action="store_true",
                        help="each trial in a child process (search.isolate; no torch-stage sharing between trials)")
    parser.add_argument("--smoke", action="store_true", help="2 trials per search, 1 fine-tuning epoch, a subset "
                        "of digits: checks the script runs (a test does), its figures mean nothing")
    args = parser.parse_args()
    if args.smoke:
        args.trials, args.epochs = 2, 1

    from edgecraft.cpu import cpu_summary, int8_features
    from edgecraft.logging_setup import quiet_runtimes
    from edgecraft.registry import build_registry
    from edgecraft.search.pareto import hypervolume
    from edgecraft.search.report import analyze
    from edgecraft.search.study import run_search, setup_search

    quiet_runtimes()
    work = args.work or Path(tempfile.mkdtemp(prefix="edgecraft-search-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    cache = args.cache_dir or work / "cache"
    plan_path = search_plan(work, args.trials, args.epochs, args.isolate, args.smoke)
    registry = build_registry()
    load_start = os.getloadavg()[0]
    results: dict[str, Any] = {}
    started = time.monotonic()
    figures: dict[str, Any] = {}
    if args.transformer_trials:
        figures["transformer"] = transformer(registry, work, cache, args.transformer_trials, args.transformer_budget)
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
        "random_best_speedup": None,
        **budget_figures(results),
        "space": [d.describe() for d in ours["outcome"].setup.dims["ort-cpu"]],
        "trials_run_now_edgecraft": ours["outcome"].ran["ort-cpu"],
        "trials_run_now_random": rnd["outcome"].ran["ort-cpu"],
        "trial_seconds_edgecraft": sum(r.get("seconds", 0) for r in a.records),
        "trial_seconds_random": sum(r.get("seconds", 0) for r in rnd["analysis"].records),
        "wall_s_edgecraft": ours["wall_s"], "wall_s_random": rnd["wall_s"], "wall_s": time.monotonic() - started,
        "int8_features": int8_features(), "cpu": cpu_summary(), "smoke": args.smoke,
        "threads": ours["outcome"].setup.plan.latency.threads,
        "cores": os.cpu_count(), "loadavg_start": load_start, "loadavg_end": os.getloadavg()[0],
        "trials_table": {name: [{k: r.get(k) for k in ("number", "state", "recipe", "speedup", "size_ratio",
                                                       "accuracy", "passed", "seconds", "torch_stage_reused",
                                                       "cached", "duplicate_of", "reason")}
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
