"""Benchmark quantization-aware training against post-training int8 on the bundled QAT example, both runtimes.

    python benchmarks/qat.py [--json OUT] [--epochs 3] [--smoke]

One run: the example (``examples/qat``: a depthwise-separable digits net, int8 with one scale per tensor) is
compressed twice through ``edgecraft.runner.run_plan`` on ``ort-cpu`` and ``openvino-cpu``: post-training
static int8 (accuracy-aware fallback off, so every layer is int8 as in QAT) and ``mode: qat``. Each run
measures its artifacts against the fp32 baseline on the same runtime (accuracy on the 360 test digits,
latency interleaved with the baseline, 1 thread, batch 1), and reads back from the runtime which compute
layers ran on integer kernels (``runtime.int8_layers``).

Figures (``--json``): ``ptq_top1_drop_pt`` and ``qat_top1_drop_pt`` (accuracy points lost vs fp32, the worse
of the two targets; goal: PTQ >= 1, QAT <= 0.3), ``qat_speedup_vs_fp32`` and ``ptq_speedup_vs_fp32`` (p50,
per target), ``qat_vs_ptq_speedup_ratio`` (within 5% of 1 means QAT kept PTQ's speed: no layer left in
float), ``qat_wall_s`` (the QAT step's wall time), and ``all_int8`` per target and variant. ``--smoke``: one
QAT epoch on ONNX Runtime only, short timing (seconds, for the test suite; its figures are not the result).
Note: this net is tiny (1.1 M MACs per image), so per-call overhead dominates its latency on both runtimes
and int8 need not be faster than fp32 here; the figure that matters is QAT vs PTQ speed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_output import finish, print_table  # this script's folder is sys.path[0]

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "qat"


def _plan(params: dict[str, Any], targets: list[Any], latency: dict[str, Any]) -> Any:
    from edgecraft.plan import RawPlan

    return RawPlan.model_validate({
        "name": "qat-benchmark",
        "model": {"kind": "torch", "factory": "model.py:build", "input_shape": [1, 1, 32, 32]},
        "data": {"digits-train": {"kind": "digits", "split": "train", "image_size": 32},
                 "digits-test": {"kind": "digits", "split": "test", "image_size": 32}},
        "evaluation": {"dataset": "digits-test", "metrics": ["top1"]},
        "latency": {"threads": 1, **latency},
        "steps": [{"strategy": "quantization", "params": {"per_channel": False, "calibration_dataset": "digits-train",
                                                          **params}}],
        "targets": targets, "contracts": [{"kind": "accuracy", "metric": "top1", "max_drop": 0.003}]})


def _rows(variant: str, report: Any) -> list[dict[str, Any]]:
    rows = []
    for t in report.targets:
        base, comp = t.baseline, t.compressed
        layers = comp.runtime.get("int8_layers", {})
        step = comp.steps[0] if comp.steps else {}
        rows.append({
            "variant": variant, "target": t.target,
            "fp32_top1": round(base.metrics["top1"], 4), "top1": round(comp.metrics["top1"], 4),
            "drop_pt": round(100 * (base.metrics["top1"] - comp.metrics["top1"]), 2),
            "fp32_p50_ms": round(base.latency_ms.p50, 4), "p50_ms": round(comp.latency_ms.p50, 4),
            "speedup_vs_fp32": round(t.ratios.get("speedup_p50", float("nan")), 3),
            "size_bytes": comp.size_bytes,
            "int8_layers": sum(layers.get("int8", {}).values()), "float_layers": sum(layers.get("float", {}).values()),
            "all_int8": layers.get("all_int8"),
            "contract": "pass" if t.passed else "fail",
            "step_wall_s": step.get("wall_s"), "epochs": step.get("qat", {}).get("epochs_run"),
        })
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--json", type=Path, help="write rows and top-level figures to this file")
    parser.add_argument("--epochs", type=int, default=3, help="QAT epochs (the example plan's)")
    parser.add_argument("--smoke", action="store_true", help="seconds: 1 epoch, ONNX Runtime only, short timing")
    parser.add_argument("--cache", type=Path, help="artifact cache (default: a temporary directory)")
    args = parser.parse_args(argv)
    from edgecraft.registry import build_registry
    from edgecraft.runner import run_plan

    targets: list[Any] = ["ort-cpu"] if args.smoke else [
        "ort-cpu", {"target": "openvino-cpu", "options": {"inference_precision": "f32"}}]
    latency = ({"warmup": 2, "repeats": 20, "rounds": 2} if args.smoke
               else {"warmup": 20, "round_ms": 50, "rounds": 10})
    epochs = 1 if args.smoke else args.epochs
    start = time.time()
    registry = build_registry()
    with tempfile.TemporaryDirectory(prefix="edgecraft-qatbench-") as tmp:
        cache = args.cache or Path(tmp)
        ptq = run_plan(_plan({"mode": "static", "accuracy_aware": {"enabled": "off"}}, targets, latency), registry,
                       base_dir=EXAMPLE, cache_dir=cache)
        # As examples/qat/plan.yaml: distillation from the float model only (labels would also teach the float
        # model, which is not fully converged: the gain would not be QAT's alone).
        qat_params = {"mode": "qat", "qat": {"dataset": "digits-train", "epochs": epochs, "loss": "distill"}}
        qat = run_plan(_plan(qat_params, targets, latency), registry, base_dir=EXAMPLE, cache_dir=cache)
    rows = _rows("ptq", ptq) + _rows("qat", qat)

    def pick(variant: str) -> list[dict[str, Any]]:
        return [r for r in rows if r["variant"] == variant]

    by_target = {r["target"]: r for r in pick("ptq")}
    figures: dict[str, Any] = {
        "ptq_top1_drop_pt": max(r["drop_pt"] for r in pick("ptq")),
        "qat_top1_drop_pt": max(r["drop_pt"] for r in pick("qat")),
        "ptq_speedup_vs_fp32": {r["target"]: r["speedup_vs_fp32"] for r in pick("ptq")},
        "qat_speedup_vs_fp32": {r["target"]: r["speedup_vs_fp32"] for r in pick("qat")},
        "qat_vs_ptq_speedup_ratio": {
            r["target"]: round(r["speedup_vs_fp32"] / by_target[r["target"]]["speedup_vs_fp32"], 3)
            for r in pick("qat")},
        "qat_wall_s": max(r["step_wall_s"] or 0.0 for r in pick("qat")),
        "qat_epochs": epochs,
        "all_int8": {f"{r['variant']}@{r['target']}": r["all_int8"] for r in rows},
        # Wall time on a shared 2-core machine depends on what else runs: the load says how busy it was.
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    cols = ["variant", "target", "fp32_top1", "top1", "drop_pt", "fp32_p50_ms", "p50_ms", "speedup_vs_fp32",
            "size_bytes", "int8_layers", "float_layers", "contract", "step_wall_s"]
    print_table(rows, cols)
    finish(figures, rows, json_path=args.json, smoke=args.smoke, start=start, threads=1, batch=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
