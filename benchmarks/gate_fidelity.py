"""Gate fidelity: does the reference gate pass an unchanged model and fail a ~10% slower one?

Setup (all on ``ort-cpu``, the bundled digits ResNet):

* the **reference**: a run of the unchanged model writes the report of the "released" artifact;
* the **unchanged** candidate: the same model again (same artifact), gated against that report;
* the **slower** candidate: the same network with ``k`` extra 1×1 convolutions after the stem's ReLU,
  initialised to the identity (so the outputs and accuracy are exactly unchanged, but ONNX Runtime
  really computes them: about 2.5% more multiply-accumulates each). ``k`` is calibrated here, on this
  machine, by timing the candidates interleaved and taking the one closest to +10%.

Every gate run is a full ``edgecraft.runner.run_plan`` with the reference report: the reference
artifact is re-measured interleaved with the candidate, the p50 regression is judged on its bootstrap
interval against ``max_latency_regression_pct`` (default 5%, halfway between 0 and 10%), and an
inconclusive verdict takes more rounds up to the time budget, then counts as a failure.

    nice python benchmarks/gate_fidelity.py [--runs 50] [--threads 1] [--json OUT]

Why one intra-op thread by default: ONNX Runtime's intra-op thread pools keep spinning after each
call, and with several sessions timed interleaved on a shared 2-core machine those spinning threads
steal the cores from the session being timed. Measured here under load (6 gate-like comparisons of
an identical model, 2 threads): estimated differences of -24% to +31%; the same with
``session.intra_op.allow_spinning = 0``: -1.7% to +2.0%; with 1 thread: -0.3% to +0.7%. The ort-cpu
backend does not expose that setting yet, so this benchmark times with 1 thread.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from edgecraft.cpu import cpu_summary

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "digits"


def build_variant(extra_layers: int) -> Any:
    """The trained digits ResNet with ``extra_layers`` identity 1×1 convolutions (+ReLU) after the stem."""
    import importlib.util

    import torch
    from torch import nn

    spec = importlib.util.spec_from_file_location("digits_model", EXAMPLE / "model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.build()
    if extra_layers:
        width = model.stem[0].out_channels
        layers: list[nn.Module] = [model.stem]
        for _ in range(extra_layers):
            conv = nn.Conv2d(width, width, 1, bias=False)
            with torch.no_grad():
                conv.weight.copy_(torch.eye(width).reshape(width, width, 1, 1))
            # The stem ends in a ReLU, so ReLU(identity(x)) == x: same outputs, real extra compute.
            layers += [conv, nn.ReLU()]
        model.stem = nn.Sequential(*layers)
    return model.eval()


def export(model: Any, path: Path) -> None:
    from edgecraft.model_source import export_onnx
    from edgecraft.modelio import ModelIO
    from edgecraft.models import TorchModel

    path.parent.mkdir(parents=True, exist_ok=True)
    export_onnx(TorchModel(model, ModelIO.single("input", (1, 1, 32, 32))), path)


def calibrate(work: Path, candidates: list[int], rounds: int, threads: int) -> tuple[int, dict[int, float]]:
    """Time every candidate interleaved with the unchanged model; return the k closest to +10%."""
    from edgecraft.backends.onnxruntime.backend import OnnxRuntimeBackend, OrtCpuOptions
    from edgecraft.plan import LatencySpec
    from edgecraft.verify.measure import measure_latency

    backend = OnnxRuntimeBackend()
    sessions = {}
    for k in [0, *candidates]:
        folder = work / f"calib-{k}"
        export(build_variant(k), folder / "model.onnx")
        sessions[k] = backend.load(folder, "ort-cpu", OrtCpuOptions(), threads)
    x = np.random.default_rng(0).standard_normal((1, 1, 32, 32)).astype(np.float32)
    stats = measure_latency(sessions, {"input": x}, LatencySpec(warmup=50, repeats=rounds * 20, rounds=rounds,
                                                                threads=threads))
    ratios = {k: stats[k].p50 / stats[0].p50 for k in candidates}
    best = min(candidates, key=lambda k: abs(ratios[k] - 1.10))
    return best, ratios


def plan_dict(model_path: str, args: argparse.Namespace) -> dict[str, Any]:
    return {
        "name": "gate-fidelity",
        "model": {"kind": "onnx", "path": model_path},
        "data": {"test": {"kind": "digits", "split": "test", "max_samples": 64}},
        "evaluation": {"dataset": "test", "metrics": ["top1"]},
        "latency": {"warmup": 20, "repeats": args.repeats, "rounds": args.rounds, "threads": args.threads},
        "targets": ["ort-cpu"],
        "gate": {"time_budget_s": args.budget, "inconclusive": "fail",
                 "reference": {"max_latency_regression_pct": args.bound, "max_accuracy_drop": 0.0,
                               "max_size_growth_pct": None}},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50, help="gate runs per candidate")
    parser.add_argument("--bound", type=float, default=5.0, help="max_latency_regression_pct")
    parser.add_argument("--budget", type=float, default=30.0, help="gate.time_budget_s (the plan's default)")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="latency.threads (intra-op threads per session); "
                        "see the module docstring before raising it")
    parser.add_argument("--extra-layers", type=int, default=None, help="skip calibration and use this k")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--smoke", action="store_true", help="one run per candidate, no calibration, few rounds: "
                        "checks the script runs (a test does), its figures mean nothing")
    args = parser.parse_args()
    if args.smoke:
        args.runs, args.rounds, args.repeats, args.budget = 1, 4, 40, min(args.budget, 5.0)
        args.extra_layers = 4 if args.extra_layers is None else args.extra_layers

    from edgecraft.plan.loading import load_plan
    from edgecraft.registry import build_registry
    from edgecraft.runner import run_plan

    registry = build_registry()
    work = Path(tempfile.mkdtemp(prefix="edgecraft-gate-fidelity-"))
    try:
        if args.extra_layers is None:
            k, ratios = calibrate(work, [2, 3, 4, 5, 6], rounds=30, threads=args.threads)
            print("calibration (p50 vs unchanged): " + ", ".join(f"k={c}: {r:.3f}x" for c, r in ratios.items())
                  + f" -> k={k}")
        else:
            k, ratios = args.extra_layers, {}
        export(build_variant(0), work / "unchanged.onnx")
        export(build_variant(k), work / "slower.onnx")
        cache = work / "cache"
        plans = {}
        for name in ("unchanged", "slower"):
            path = work / f"{name}.yaml"
            path.write_text(yaml.safe_dump(plan_dict(f"{name}.onnx", args)))
            plans[name] = load_plan(path, registry)

        reference_report = work / "reference.json"
        plan, base = plans["unchanged"]
        released = run_plan(plan, registry, base_dir=base, cache_dir=cache, plan_path="unchanged.yaml")
        reference_report.write_text(json.dumps(released.to_json()))

        results: dict[str, list[dict[str, Any]]] = {"unchanged": [], "slower": []}
        started = time.monotonic()
        for i in range(args.runs):
            for name in ("unchanged", "slower"):  # alternate, so both see the same machine conditions
                plan, base = plans[name]
                report = run_plan(plan, registry, base_dir=base, cache_dir=cache, plan_path=f"{name}.yaml",
                                  reference=reference_report)
                verdict = next(v for v in report.targets[0].contracts if v.origin == "reference"
                               and v.kind == "latency")
                results[name].append({"passed": report.passed, "status": verdict.status,
                                      "regression_pct": verdict.measured, "ci": [verdict.ci_low, verdict.ci_high],
                                      "extra_rounds": report.targets[0].extra_rounds})
            if (i + 1) % 10 == 0:
                print(f"  {i + 1}/{args.runs} runs per candidate, {time.monotonic() - started:.0f} s", flush=True)
        elapsed = time.monotonic() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
        reg = np.array([r["regression_pct"] for r in rows])
        return {"runs": len(rows), "passed": sum(r["passed"] for r in rows),
                "statuses": {s: sum(r["status"] == s for r in rows) for s in ("pass", "fail", "inconclusive")},
                "regression_pct_median": float(np.median(reg)), "regression_pct_min": float(reg.min()),
                "regression_pct_max": float(reg.max()),
                "runs_with_extra_rounds": sum(r["extra_rounds"] > 0 for r in rows)}

    unchanged, slower = summary(results["unchanged"]), summary(results["slower"])
    unchanged_pass_rate = unchanged["passed"] / unchanged["runs"]
    slower_fail_rate = (slower["runs"] - slower["passed"]) / slower["runs"]
    print(f"\nbound: p50 regression <= {args.bound:g}% vs the reference, 95% bootstrap CI, budget {args.budget:g} s")
    print(f"{'candidate':<12}{'runs':>6}{'pass':>6}{'fail':>6}{'incon.':>8}{'median %':>10}{'min %':>8}{'max %':>8}"
          f"{'extended':>10}")
    for name, s in (("unchanged", unchanged), (f"slower k={k}", slower)):
        print(f"{name:<12}{s['runs']:>6}{s['statuses']['pass']:>6}{s['statuses']['fail']:>6}"
              f"{s['statuses']['inconclusive']:>8}{s['regression_pct_median']:>10.1f}{s['regression_pct_min']:>8.1f}"
              f"{s['regression_pct_max']:>8.1f}{s['runs_with_extra_rounds']:>10}")
    print(f"\nunchanged_pass_rate = {unchanged_pass_rate:.2f}   slower_fail_rate = {slower_fail_rate:.2f}   "
          f"({elapsed:.0f} s for {2 * args.runs} gate runs)")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "unchanged_pass_rate": unchanged_pass_rate, "slower_fail_rate": slower_fail_rate,
            "runs_per_candidate": args.runs, "bound_pct": args.bound, "time_budget_s": args.budget,
            "extra_layers": k, "calibration_ratios": {str(c): r for c, r in ratios.items()},
            "unchanged": unchanged, "slower": slower, "seconds": elapsed, "smoke": args.smoke,
            "cpu": cpu_summary()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
