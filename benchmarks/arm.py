"""Edge runtimes' int8: ExecuTorch + XNNPACK on the host and on the emulated aarch64 board.

    python benchmarks/arm.py [--json OUT] [--rounds 10] [--smoke]

One run, one JSON. The rows come in groups, one function each (``ROW_GROUPS``); a group returns its table
rows and its top-level figures, so a new group (the emulated aarch64 board's) is one more function:

* ``host_executorch_resnet``: a ResNet-18-sized net (:mod:`bench_models`, random init: latency and size only,
  1x3x224x224, batch 1, 2 threads), built by ``edgecraft.runner.run_plan`` on ``executorch-xnnpack`` and
  ``ort-cpu`` with one ``quantization`` step (static int8: PT2E + XNNPACK quantizer there, QDQ here).
  The four artifacts (XNNPACK fp32/int8, ORT fp32/int8) are timed interleaved in the same rounds
  (a shuffled order per round); ratios are medians of per-round ratios, so machine drift cancels.
  Figures: ``executorch_int8_speedup_host`` (XNNPACK int8 vs XNNPACK fp32; goal >= 2.5 with int8 dot
  products (VNNI), >= 1.5 without) and ``executorch_vs_ort_int8_latency_ratio_host`` (ExecuTorch int8 p50 /
  edgecraft's ORT int8 p50: below 1, ExecuTorch is faster).
* ``host_executorch_digits``: ``examples/executorch/plan.yaml`` (the digits ResNet, trained; int8 by PT2E)
  through ``run_plan``: ``executorch_int8_top1_drop_pt`` (goal <= 0.5 points).
* ``board_executorch_digits``: the same plan on ``executorch-aarch64`` (ExecuTorch's C++ runtime on the
  emulated Cortex-A76 board, ``edgecraft device setup arm64-emulated``): ``executorch_arm_int8_top1_drop_pt``
  (goal <= 0.5 points) judged on the board, and ``arm_vs_x86_int8_max_abs_diff`` (``executorch``: the same int8
  .pte run by the host's x86 XNNPACK and the board's ARM XNNPACK on the same digits, largest logit difference).
  The board's identity and CPU features are recorded (``board``); its latency is emulated, so not a figure.

``--smoke``: a tiny conv net at 32x32 and 64 digits test samples, a few rounds: seconds of timing, for the
test suite (the figures then mean nothing). The CPU's int8 features are recorded (``cpu``).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from edgecraft.cpu import cpu_summary
from edgecraft.cpu import describe as describe_cpu

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
EXAMPLE = ROOT / "examples" / "executorch" / "plan.yaml"
CALIBRATION_SAMPLES = 32
THREADS = 2


# ---------------------------------------------------------------- model and data factories (plans name them)
def resnet18() -> Any:
    """The shared ResNet-18-sized net (:mod:`bench_models`)."""
    from bench_models import resnet18 as build  # this script's folder is sys.path[0] (or the plan's base dir)

    return build()


def tiny_net() -> Any:
    """The smoke run's stand-in: three convolutions and a Linear at 32x32 (seconds to lower and quantize)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2, padding=1),
                         nn.ReLU(), nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(32 * 8 * 8, 10)).eval()


def images_224() -> tuple[np.ndarray, None]:
    from bench_models import random_images

    return random_images(CALIBRATION_SAMPLES)


def images_32() -> tuple[np.ndarray, None]:
    from bench_models import random_images

    return random_images(8, (3, 32, 32))


# ---------------------------------------------------------------- interleaved timing of loaded sessions
def time_interleaved(sessions: dict[str, Any], feeds: dict[str, np.ndarray], rounds: int, calls: int,
                     warmup: int) -> dict[str, list[float]]:
    """Per-round median milliseconds of each session: every round runs each session's ``calls`` timed calls,
    in a freshly shuffled order, so all sessions see the same machine state within a round."""
    for session in sessions.values():
        session.timed_runs(feeds, warmup)
    per_round: dict[str, list[float]] = {name: [] for name in sessions}
    rng = random.Random(0)
    for _ in range(rounds):
        order = list(sessions)
        rng.shuffle(order)
        for name in order:
            per_round[name].append(1000 * float(np.median(sessions[name].timed_runs(feeds, calls))))
    return per_round


def ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median over rounds of numerator / denominator (both timed in the same rounds)."""
    return float(np.median(np.asarray(numerator) / np.asarray(denominator)))


def _run(plan: Any, base: Path, cache: Path) -> dict[str, Any]:
    from edgecraft.registry import build_registry
    from edgecraft.runner import run_plan

    report = run_plan(plan, build_registry(), base_dir=base, cache_dir=cache)
    return {t.target: t for t in report.targets}


# ---------------------------------------------------------------- row groups
def host_executorch_resnet(args: argparse.Namespace, cache: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """XNNPACK fp32/int8 and ORT fp32/int8 on the host, one interleaved measurement."""
    from edgecraft.plan import RawPlan
    from edgecraft.registry import build_registry

    model, data, shape, label = (("arm.py:tiny_net", "arm.py:images_32", (1, 3, 32, 32), "tiny-32") if args.smoke
                                 else ("arm.py:resnet18", "arm.py:images_224", (1, 3, 224, 224), "resnet18-224"))
    plan = RawPlan.model_validate({
        "name": "arm-benchmark-host", "model": {"kind": "torch", "factory": model, "input_shape": list(shape)},
        "data": {"calib": {"kind": "factory", "factory": data}},
        "steps": [{"strategy": "quantization", "name": "int8",
                   "params": {"mode": "static", "calibration_dataset": "calib",
                              "calibration_samples": CALIBRATION_SAMPLES}}],
        "targets": ["executorch-xnnpack", "ort-cpu"],
        "latency": {"threads": THREADS, "warmup": 2, "rounds": 1, "round_ms": 5}})  # timed below, interleaved
    print(f"[{label}] building ExecuTorch and ONNX Runtime artifacts (run_plan)", file=sys.stderr)
    reports = _run(plan, HERE, cache)
    registry = build_registry()
    sessions: dict[str, Any] = {}
    sizes: dict[str, int] = {}
    for target, runtime in (("executorch-xnnpack", "executorch"), ("ort-cpu", "ort")):
        report = reports[target]
        backend, info = registry.target(target)
        options = info.options_model()
        for precision, built in (("fp32", report.baseline), ("int8", report.compressed)):
            name = f"{runtime} {precision}"
            sessions[name] = backend.load(Path(built.artifact), target, options, THREADS)
            sizes[name] = built.size_bytes
    feeds = {"input": np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    print(f"[{label}] timing {len(sessions)} sessions interleaved, {args.rounds} rounds", file=sys.stderr)
    calls = 5 if args.smoke else 20
    per_round = time_interleaved(sessions, feeds, args.rounds, calls, warmup=3 if args.smoke else 10)
    rows = []
    for name, session in sessions.items():
        runtime, precision = name.split()
        described = session.describe()
        rows.append({"group": "host", "model": label, "runtime": runtime, "precision": precision,
                     "p50_ms": round(float(np.median(per_round[name])), 3),
                     "speedup_vs_fp32": round(ratio(per_round[f"{runtime} fp32"], per_round[name]), 3),
                     "size_bytes": sizes[name], "size_ratio_vs_fp32": round(sizes[f"{runtime} fp32"] / sizes[name], 3),
                     "described_precision": described.get("precision", "(not described)"),
                     "delegated": (f"{described['delegated_nodes']} in / {described['not_delegated_nodes']} out"
                                   if "delegated_nodes" in described else "")})
        session.close()
    figures = {
        "executorch_int8_speedup_host": round(ratio(per_round["executorch fp32"], per_round["executorch int8"]), 3),
        "executorch_vs_ort_int8_latency_ratio_host": round(
            ratio(per_round["executorch int8"], per_round["ort int8"]), 3),
        "executorch_int8_size_ratio_host": round(sizes["executorch fp32"] / sizes["executorch int8"], 3),
    }
    return rows, figures


def host_executorch_digits(args: argparse.Namespace, cache: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The example plan (digits ResNet, PT2E int8 on XNNPACK) through run_plan: accuracy on the host."""
    from edgecraft.plan import RawPlan

    raw = yaml.safe_load(EXAMPLE.read_text())
    if args.smoke:
        raw["data"]["digits-test"]["max_samples"] = 64
        raw["steps"][0]["params"]["calibration_samples"] = 8
        raw["latency"] = {**raw["latency"], "rounds": 2, "warmup": 2, "round_ms": 5}
    print("[digits] examples/executorch/plan.yaml through run_plan", file=sys.stderr)
    target = _run(RawPlan.model_validate(raw), EXAMPLE.parent, cache)["executorch-xnnpack"]
    base, comp = target.baseline.metrics["top1"], target.compressed.metrics["top1"]
    drop = round(100 * (base - comp), 2)
    rows = [{"group": "host", "model": "digits-resnet", "runtime": "executorch", "precision": precision,
             "top1": round(top1, 4), "drop_pt": 0.0 if precision == "fp32" else drop,
             "size_bytes": built.size_bytes, "described_precision": built.runtime.get("precision")}
            for precision, top1, built in (("fp32", base, target.baseline), ("int8", comp, target.compressed))]
    return rows, {"executorch_int8_top1_drop_pt": drop, "executorch_digits_eval_samples":
                  64 if args.smoke else "all (digits test split)"}


def board_executorch_digits(args: argparse.Namespace, cache: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The example plan on ``executorch-aarch64`` (the same .pte, ExecuTorch's C++ runtime on the emulated
    board): accuracy judged on the board, then the *same* int8 .pte run by the host's runtime and the board's
    on the same digits: the largest logit difference between XNNPACK's ARM and x86 int8 kernels."""
    from edgecraft.datasets import load_dataset
    from edgecraft.plan import RawPlan
    from edgecraft.plugins.datasets.digits import DigitsParams
    from edgecraft.registry import build_registry

    raw = yaml.safe_load(EXAMPLE.read_text())
    samples = 64 if args.smoke else None
    if samples:
        raw["data"]["digits-test"]["max_samples"] = samples
        raw["steps"][0]["params"]["calibration_samples"] = 8
    raw["targets"] = [{"target": "executorch-aarch64"}]
    raw["contracts"] = [c for c in raw["contracts"] if c["kind"] != "latency"]  # emulated: latency says nothing
    raw["latency"] = {**raw["latency"], "rounds": 2, "warmup": 2, "round_ms": 5}
    print("[board] examples/executorch/plan.yaml on executorch-aarch64 (emulated board) through run_plan",
          file=sys.stderr)
    target = _run(RawPlan.model_validate(raw), EXAMPLE.parent, cache)["executorch-aarch64"]
    base, comp = target.baseline.metrics["top1"], target.compressed.metrics["top1"]
    drop = round(100 * (base - comp), 2)
    board = target.compressed.runtime
    rows = [{"group": "board", "model": "digits-resnet", "runtime": "executorch-aarch64", "precision": precision,
             "top1": round(top1, 4), "drop_pt": 0.0 if precision == "fp32" else drop,
             "size_bytes": built.size_bytes, "described_precision": built.runtime.get("precision"),
             "delegated": f"{built.runtime.get('delegated_nodes')} in / {built.runtime.get('not_delegated_nodes')} out"}
            for precision, top1, built in (("fp32", base, target.baseline), ("int8", comp, target.compressed))]

    params = DigitsParams(split="test", image_size=32, input="input", max_samples=samples)
    x = load_dataset("digits-test", params, EXAMPLE.parent).x
    registry = build_registry()
    outputs: dict[tuple[str, str], np.ndarray] = {}
    for precision, built in (("fp32", target.baseline), ("int8", target.compressed)):
        for name in ("executorch-xnnpack", "executorch-aarch64"):  # one .pte each: the board target's artifact
            backend, info = registry.target(name)
            session = backend.load(Path(built.artifact), name, info.options_model(), THREADS)
            try:
                outputs[precision, name] = session.run({"input": x})[0]
            finally:
                session.close()
    x86, arm = outputs["int8", "executorch-xnnpack"], outputs["int8", "executorch-aarch64"]
    fp32_diff = np.abs(outputs["fp32", "executorch-aarch64"] - outputs["fp32", "executorch-xnnpack"]).max()
    figures = {"executorch_arm_int8_top1_drop_pt": drop,
               "arm_vs_x86_int8_max_abs_diff": {"executorch": round(float(np.abs(arm - x86).max()), 6)},
               "executorch_arm_vs_x86_int8_argmax_agreement": round(float((arm.argmax(1) == x86.argmax(1)).mean()), 4),
               "executorch_arm_vs_x86_samples": len(x),
               # fp32 sums in another order on ARM: a nonzero difference shows the two runs are two runtimes
               "executorch_arm_vs_x86_fp32_max_abs_diff": float(fp32_diff),
               "board": {k: board.get(k) for k in ("device", "emulator", "qemu_cpu", "runtime", "cpu_features",
                                                   "int8_qdq_nodes_delegated", "not_delegated_nodes")}}
    return rows, figures


#: The row groups, in order. The emulated board's (ExecuTorch on aarch64) is the last.
ROW_GROUPS: list[Callable[[argparse.Namespace, Path], tuple[list[dict[str, Any]], dict[str, Any]]]] = [
    host_executorch_resnet, host_executorch_digits, board_executorch_digits]


def print_table(rows: list[dict[str, Any]]) -> None:
    cols = ["group", "model", "runtime", "precision", "p50_ms", "speedup_vs_fp32", "size_bytes", "size_ratio_vs_fp32",
            "top1", "drop_pt", "described_precision", "delegated"]
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in cols))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--json", type=Path, help="write rows and top-level figures to this file")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, a few rounds: checks the script runs")
    parser.add_argument("--cache", type=Path, help="artifact cache (default: a temporary directory)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rounds = min(args.rounds, 3)
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))  # bench_models, when run as a module
    start = time.time()
    rows: list[dict[str, Any]] = []
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="edgecraft-armbench-") as tmp:
        cache = args.cache or Path(tmp)
        for group in ROW_GROUPS:
            group_rows, group_figures = group(args, cache)
            rows += group_rows
            figures.update(group_figures)
    print_table(rows)
    print()
    for key, value in figures.items():
        print(f"{key}: {value}")
    print(f"cpu: {describe_cpu()}")  # int8 gains depend on int8 dot-product instructions (VNNI)
    print(f"(total {time.time() - start:.0f} s{', smoke: figures not meaningful' if args.smoke else ''})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**figures, "rows": rows, "threads": THREADS, "batch": 1,
                                         "rounds": args.rounds, "smoke": args.smoke,
                                         "calibration_samples": CALIBRATION_SAMPLES, "cpu": cpu_summary()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
