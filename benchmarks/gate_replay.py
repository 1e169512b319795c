"""Gate replay: why the gate missed under contention, measured on recorded rounds (issue 25, class 11).

Records interleaved rounds of the ResNet-18-sized net the way the gate times them, with one core kept busy
and 2 intra-op threads: sessions ``compressed`` and ``reference`` (the same unchanged model, loaded twice)
and ``slower`` (``k`` identity 3x3 convolutions, ~+10%), each block ``--calls`` calls, every call timed on
the wall clock and on the process's CPU clock, plus the block's CPU share and the other processes' busy cores
(``/proc/stat``). Then it replays the gate's sequential check (first look at 10 rounds, batches of half the
rounds so far, stricter level per look, a budget of ~30 s of rounds) from every 5th recorded round, once per
judging policy:

* ``block mean, discards``: the block's mean CPU time per call, rounds the wall clock calls disturbed left
  out (the gate before this fix);
* ``block mean, all rounds`` / ``lower quintile, discards`` / ``lower quintile, all rounds`` (the gate now);
* ``wall clock, discards``: the lower quintile of wall-clock calls (what a gate without CPU time judges).

    python benchmarks/gate_replay.py [--rounds 300] [--json OUT]

It prints, per policy, how many replayed gates passed / failed / stayed inconclusive for the unchanged and
the slower model, and the per-round ratio's spread (sd of the log ratio) per statistic. The machine's other
load is part of the measurement: the load average is written with the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gate_cost as gc

POLICIES = (("block", True), ("block", False), ("low", True), ("low", False), ("wall", True))
NAMES = {"block": "block mean", "low": "lower quintile", "wall": "wall clock"}


def record(paths: dict[str, Path], shape: tuple[int, ...], rounds: int, calls: int) -> dict[str, dict[str, Any]]:
    """Per session: (rounds, calls) wall and CPU seconds per call, and per block CPU share and others' busy cores."""
    from edgecraft.backends.onnxruntime.backend import OnnxRuntimeBackend, OrtCpuOptions
    from edgecraft.verify.measure import machine_busy_seconds

    backend = OnnxRuntimeBackend()
    sessions = {name: backend.load(path.parent, "ort-cpu", OrtCpuOptions(), 2) for name, path in paths.items()}
    feeds = {"input": np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    rec: dict[str, dict[str, Any]] = {n: {"wall": [], "cpu": [], "share": [], "others": []} for n in sessions}
    order, rng = list(sessions), random.Random(0)
    with gc.Burner(len(os.sched_getaffinity(0)) - 1):
        for session in sessions.values():
            for _ in range(10):
                session.run(feeds)
        for _ in range(rounds):
            rng.shuffle(order)
            for name in order:
                busy0, cpu0, wall0 = machine_busy_seconds(), time.process_time(), time.perf_counter()
                walls, cpus = [], []
                for _ in range(calls):
                    c, w = time.process_time(), time.perf_counter()
                    sessions[name].run(feeds)
                    walls.append(time.perf_counter() - w)
                    cpus.append(time.process_time() - c)
                wall, cpu, busy1 = time.perf_counter() - wall0, time.process_time() - cpu0, machine_busy_seconds()
                rec[name]["wall"].append(walls)
                rec[name]["cpu"].append(cpus)
                rec[name]["share"].append(cpu / wall)
                others = None if busy0 is None or busy1 is None else max(0.0, busy1 - busy0 - cpu) / wall
                rec[name]["others"].append(others)
    return {n: {k: np.asarray(v, dtype=np.float64) for k, v in d.items()} for n, d in rec.items()}


def per_round(rec: dict[str, Any], idx: np.ndarray, how: str) -> np.ndarray:
    if how == "block":
        return rec["cpu"][idx].mean(axis=1)
    return np.quantile(rec["cpu" if how == "low" else "wall"][idx], 0.2, axis=1)


def replay(rec: dict[str, dict[str, Any]], num: str, start: int, how: str, discard: bool, budget_rounds: int) -> str:
    """One gate's sequential check on the recorded rounds from ``start`` (wrapping), p50 regression <= 5%."""
    from edgecraft.verify.stats import decide_at_most, disturbed_rounds, look_confidence, paired_ratio_interval

    total = len(rec[num]["share"])
    n, look = 10, 1
    while True:
        idx = (start + np.arange(n)) % total
        keep, too = np.ones(n, dtype=bool), False
        if discard:
            flt = disturbed_rounds({s: rec[s]["wall"][idx] for s in (num, "reference")},
                                   {s: rec[s]["share"][idx] for s in (num, "reference")})
            too = flt.too_disturbed
            keep = keep if too else flt.keep
        ci = paired_ratio_interval(per_round(rec[num], idx, how)[keep], per_round(rec["reference"], idx, how)[keep])
        status = "inconclusive" if too else decide_at_most(
            ci.at_confidence(look_confidence(0.95, look)).scaled(100.0, -100.0), 5.0)
        if status != "inconclusive" or n - 10 >= budget_rounds:
            return status
        n, look = min(n + max(2, math.ceil(0.5 * n)), 10 + budget_rounds), look + 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=300, help="recorded rounds")
    parser.add_argument("--calls", type=int, default=5, help="calls per block (the gate's min_calls for this model)")
    parser.add_argument("--extra-layers", type=int, default=2, help="k of the slower model (~+10% here)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--smoke", action="store_true", help="a tiny net and 24 rounds: checks the script runs")
    args = parser.parse_args()
    from edgecraft.cpu import cpu_summary

    shape = (1, 3, 32, 32) if args.smoke else gc.LARGE_SHAPE
    if args.smoke:
        args.rounds = min(args.rounds, 24)
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="edgecraft-gate-replay-") as tmp:
        paths = {"compressed": Path(tmp) / "k0" / "model.onnx", "slower": Path(tmp) / "k" / "model.onnx"}
        if args.smoke:
            from bench_models import tiny_convnet
            from edgecraft.model_source import export_onnx
            from edgecraft.modelio import ModelIO
            from edgecraft.models import TorchModel

            for path in paths.values():
                path.parent.mkdir(parents=True)
                export_onnx(TorchModel(tiny_convnet(), ModelIO.single("input", shape)), path)
        else:
            gc.export_large(0, paths["compressed"])
            gc.export_large(args.extra_layers, paths["slower"])
        started = time.monotonic()
        rec = record({**paths, "reference": paths["compressed"]}, shape, args.rounds, args.calls)
        seconds = time.monotonic() - started
    round_s = seconds / args.rounds * 2 / 3  # a gate round times 2 sessions (compressed = baseline), not 3
    budget_rounds = max(2, int(30.0 / round_s))
    starts = range(0, args.rounds, 5)
    results: dict[str, Any] = {}
    print(f"{args.rounds} rounds in {seconds:.0f} s, load average {load_start} -> {os.getloadavg()}; "
          f"replayed gates from {len(starts)} starts, budget ~{budget_rounds} extra rounds")
    print(f"{'policy':<30}{'unchanged pass/fail/inc.':>26}{'slower pass/fail/inc.':>24}")
    for how, discard in POLICIES:
        label = f"{NAMES[how]}, {'discards' if discard else 'all rounds'}"
        row = {}
        for cand in ("compressed", "slower"):
            statuses = [replay(rec, cand, s, how, discard, budget_rounds) for s in starts]
            row["unchanged" if cand == "compressed" else "slower"] = {s: statuses.count(s)
                                                                      for s in ("pass", "fail", "inconclusive")}
        results[label] = row
        u, s = row["unchanged"], row["slower"]
        print(f"{label:<30}{u['pass']:>14}/{u['fail']}/{u['inconclusive']:<9}{s['pass']:>12}/{s['fail']}/"
              f"{s['inconclusive']}")
    spread = {NAMES[how]: float(np.std(np.log(per_round(rec["compressed"], np.arange(args.rounds), how)
                                              / per_round(rec["reference"], np.arange(args.rounds), how))))
              for how in ("wall", "block", "low")}
    print("per-round ratio spread of the identical models (sd of the log): "
          + ", ".join(f"{k} {100 * v:.1f}%" for k, v in spread.items()))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "rounds": args.rounds, "calls_per_block": args.calls, "seconds": seconds, "smoke": args.smoke,
            "load_average_start": load_start, "load_average_end": os.getloadavg(), "replayed_gates": len(starts),
            "budget_rounds": budget_rounds, "policies": results, "ratio_spread_log_sd": spread,
            "others_busy_cores_median": float(np.median([x for x in rec["compressed"]["others"] if x == x])),
            "cpu": cpu_summary()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
