"""Benchmark fp16 on ``ort-aarch64`` (the ``quantization`` step with ``mode: fp16``) on the emulated aarch64 board.

    python benchmarks/ort_arm_fp16.py [--json OUT] [--smoke] [--digits N] [--minilm-sentences N]

Each model is one plan run through ``edgecraft.runner.run_plan`` on ``ort-aarch64`` (Cortex-A76, FEAT_FP16;
onnxruntime 1.27's aarch64 wheel): the baseline is the fp32 model built by the target, the candidate the same
model after the fp16 step, both evaluated by the board's ONNX Runtime on the same data, so the figures are the
ones the plan's accuracy contract judges:

* digits ResNet (``examples/digits``, trained), the 360 test images: ``ort_arm_fp16_top1_drop_pt`` (fp32 minus
  fp16 top-1, points), ``ort_arm_fp16_agreement`` (share of images classified as the fp32 model does),
  ``ort_arm_fp16_cosine`` (logits against fp32), ``ort_arm_fp16_share`` (compute ops of the board's executed graph
  that took float16 inputs; the rest ran in float32 behind Casts), ``ort_arm_fp16_compute_ops`` and the verdict of
  a ``max_drop: 0.005`` top-1 contract;
* int8 with fp16 fallback layers on the same digits ResNet: static int8 (QDQ S8S8 per-channel) with the stem and
  the classifier kept out of int8 (``keep_float_layers``) and computed in fp16 (``float_precision: fp16``):
  ``ort_arm_int8_fp16_top1_drop_pt`` and ``ort_arm_int8_fp16_shares`` (int8, fp16 and fp32 shares of the compute
  ops of the board's executed graph; the classifier's Gemm has no fp16 kernel on ARM, so it shows as fp32);
* all-MiniLM-L6-v2 (``examples/transformer``, sequence 64) on ``--minilm-sentences`` held-out sentences (each costs
  seconds under emulation): ``ort_arm_minilm_fp16_cos`` (sentence embeddings, cosine to the board's fp32) and
  ``ort_arm_minilm_fp16_share``.

Latency on the board is QEMU's (emulated fp16 arithmetic is slow in QEMU): recorded, not a figure.
``--smoke``: an untrained tiny CNN on 16 8x8 digits, no MiniLM (a test runs it; its figures are not the benchmark's).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from edgecraft.cpu import cpu_summary
from edgecraft.cpu import describe as describe_cpu

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_modules import load  # noqa: E402 (this folder on the path for this import only)

# This folder holds a benchmark named transformers.py, which would shadow Hugging Face's package for MiniLM.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
#: The int8 board benchmark: its smoke model, its plan runner, its board latency settings and its MiniLM.
ort_arm = load("ort_arm", HERE / "ort_arm.py")
DIGITS, TRANSFORMER, LATENCY, _run = ort_arm.DIGITS, ort_arm.TRANSFORMER, ort_arm.LATENCY, ort_arm._run
FP16 = [{"strategy": "quantization", "name": "fp16", "params": {"mode": "fp16"}}]


def _executed(runtime: dict[str, Any]) -> dict[str, Any]:
    ran = runtime.get("fp16_executed") or {}
    return {"precision": runtime.get("precision"), "fp16_share": ran.get("fp16_share"),
            "compute_ops": {"int8": ran.get("compute_ops_int8"), "float16": ran.get("compute_ops_fp16"),
                            "float32": ran.get("compute_ops_fp32")}, "by_op": ran.get("by_op")}


def _digits_plan(n: int, smoke: bool, steps: list[dict[str, Any]], name: str) -> dict[str, Any]:
    from edgecraft.backends.onnxruntime.aarch64 import TARGET

    size = 8 if smoke else 32
    model = ({"kind": "torch", "factory": "ort_arm.py:tiny_cnn", "input_shape": [1, 1, 8, 8]} if smoke else
             {"kind": "torch", "factory": "model.py:build", "input_shape": [1, 1, 32, 32]})
    return {
        "name": name, "model": {**model, "exporter": "torchscript", "opset": 17},  # node names keep_float_layers reads
        "data": {"train": {"kind": "digits", "split": "train", "image_size": size},
                 "test": {"kind": "digits", "split": "test", "image_size": size, "max_samples": n}},
        "evaluation": {"dataset": "test", "metrics": ["top1", "agreement", "cosine"], "batch_size": 40},
        "steps": steps, "targets": [TARGET],
        "contracts": [{"kind": "accuracy", "metric": "top1", "max_drop": 0.005}],
        "latency": LATENCY}


def digits(n: int, cache: Path, *, smoke: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    started = time.perf_counter()
    target = _run(_digits_plan(n, smoke, FP16, "ort-arm-fp16-digits"), HERE if smoke else DIGITS, cache)
    base, comp = target.baseline, target.compressed
    ran = _executed(comp.runtime)
    drop = round(100 * (base.metrics["top1"] - comp.metrics["top1"]), 2)
    row = {"model": "tiny-cnn (smoke, untrained)" if smoke else "digits-resnet", "samples": n,
           "top1_fp32_arm": base.metrics["top1"], "top1_fp16_arm": comp.metrics["top1"], "drop_pt": drop,
           "agreement": comp.metrics["agreement"], "cosine": comp.metrics["cosine"],
           "precision_executed": ran["precision"], "fp16_by_op": ran["by_op"],
           "executed_ops_fp32": base.runtime.get("executed_ops"), "executed_ops_fp16": comp.runtime.get("executed_ops"),
           "emulated_p50_ms_fp32": base.latency_ms.p50, "emulated_p50_ms_fp16": comp.latency_ms.p50,
           "size_fp32": base.size_bytes, "size_fp16": comp.size_bytes, "run_s": round(time.perf_counter() - started, 1)}
    figures = {
        "ort_arm_fp16_top1_drop_pt": drop,
        "ort_arm_fp16_agreement": comp.metrics["agreement"],
        "ort_arm_fp16_cosine": comp.metrics["cosine"],
        "ort_arm_fp16_share": ran["fp16_share"],
        "ort_arm_fp16_compute_ops": {k: v for k, v in ran["compute_ops"].items() if k != "int8"},
        "ort_arm_fp16_contract": {v.name: f"{v.status} (measured {v.measured:.4g}, bound {v.bound:.4g})"
                                  for v in target.contracts},
        "baseline_precision": base.runtime.get("precision", "fp32"),
        "board": {k: comp.runtime.get(k) for k in ("device", "qemu_cpu", "runtime", "cpu_features")},
    }
    return row, figures


def digits_int8_fp16(n: int, cache: Path, *, smoke: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """Static int8 with the stem and classifier kept out of int8 and computed in fp16 (int8 with fp16 fallback)."""
    started = time.perf_counter()
    keep = ["/2/*"] if smoke else ["/stem/*", "/fc/*"]
    steps = [{"strategy": "quantization", "name": "int8-fp16",
              "params": {"mode": "static", "calibration_dataset": "train", "calibration_samples": 128,
                         "keep_float_layers": keep, "float_precision": "fp16", "accuracy_aware": {"enabled": "off"}}}]
    target = _run(_digits_plan(n, smoke, steps, "ort-arm-int8-fp16-digits"), HERE if smoke else DIGITS, cache)
    base, comp = target.baseline, target.compressed
    ran = comp.runtime.get("fp16_executed") or {}
    executed = _executed(comp.runtime)
    drop = round(100 * (base.metrics["top1"] - comp.metrics["top1"]), 2)
    shares = {"int8": ran.get("int8_share"), "fp16": ran.get("fp16_share"), "fp32": ran.get("fp32_share")}
    row = {"model": ("tiny-cnn (smoke, untrained)" if smoke else "digits-resnet") + " int8+fp16 fallback",
           "samples": n, "kept_out_of_int8": keep, "top1_fp32_arm": base.metrics["top1"],
           "top1_int8_fp16_arm": comp.metrics["top1"], "drop_pt": drop, "agreement": comp.metrics["agreement"],
           "precision_executed": comp.runtime.get("precision"), "by_op": ran.get("by_op"),
           "size_fp32": base.size_bytes, "size_int8_fp16": comp.size_bytes,
           "run_s": round(time.perf_counter() - started, 1)}
    return row, {"ort_arm_int8_fp16_top1_drop_pt": drop, "ort_arm_int8_fp16_shares": shares,
                 "ort_arm_int8_fp16_compute_ops": executed["compute_ops"],
                 "ort_arm_int8_fp16_precision": executed["precision"]}


def minilm(sentences: int, cache: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    from edgecraft.backends.onnxruntime.aarch64 import TARGET

    started = time.perf_counter()
    target = _run({
        "name": "ort-arm-fp16-minilm",
        "model": ort_arm.MINILM,
        "data": {"held-out": {"kind": "text", "path": "eval.txt", "max_samples": sentences}},
        "evaluation": {"dataset": "held-out", "metrics": ["cosine"], "output": "sentence_embedding",
                       "batch_size": sentences},
        "steps": FP16, "targets": [TARGET],
        "contracts": [{"kind": "accuracy", "metric": "cosine", "max_drop": 0.01}],
        "latency": LATENCY}, TRANSFORMER, cache)
    comp = target.compressed
    ran = _executed(comp.runtime)
    row = {"model": "all-MiniLM-L6-v2 (seq 64)", "samples": sentences, "cosine_fp16_arm": comp.metrics["cosine"],
           "precision_executed": ran["precision"], "fp16_by_op": ran["by_op"],
           "emulated_p50_ms_fp32": target.baseline.latency_ms.p50, "emulated_p50_ms_fp16": comp.latency_ms.p50,
           "size_fp32": target.baseline.size_bytes, "size_fp16": comp.size_bytes,
           "run_s": round(time.perf_counter() - started, 1)}
    return row, {"ort_arm_minilm_fp16_cos": comp.metrics["cosine"], "ort_arm_minilm_fp16_share": ran["fp16_share"],
                 "ort_arm_minilm_fp16_compute_ops": ran["compute_ops"], "ort_arm_minilm_sentences": sentences}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--json", type=Path, help="write rows and figures to this file")
    parser.add_argument("--smoke", action="store_true", help="16 8x8 digits, untrained tiny CNN, no MiniLM")
    parser.add_argument("--digits", type=int, default=360, help="test images (the split has 360)")
    parser.add_argument("--minilm-sentences", type=int, default=8, help="0 skips MiniLM")
    args = parser.parse_args(argv)
    start = time.time()
    rows: list[dict[str, Any]] = []
    figures: dict[str, Any] = {}
    n_digits, n_sentences = (16, 0) if args.smoke else (args.digits, args.minilm_sentences)

    def write(*, complete: bool) -> None:
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({**figures, "rows": rows, "smoke": args.smoke, "threads": 1,
                                             "host_cpu": cpu_summary(), "complete": complete}, indent=2,
                                            default=str) + "\n")

    def done(row: dict[str, Any], more: dict[str, Any]) -> None:
        """Keep a group's results, and write the JSON so far (a long emulated run keeps what it measured)."""
        rows.append(row)
        figures.update(more)
        print(f"[{time.time() - start:.0f} s] {row['model']}: done", file=sys.stderr, flush=True)
        write(complete=False)

    with tempfile.TemporaryDirectory(prefix="edgecraft-ortarm-fp16-") as tmp:
        for group in (digits, digits_int8_fp16):
            done(*group(n_digits, Path(tmp) / "cache", smoke=args.smoke))
        if n_sentences:
            done(*minilm(n_sentences, Path(tmp) / "cache"))
    for row in rows:
        for key, value in row.items():
            print(f"{key}: {value}")
        print()
    for key, value in figures.items():
        print(f"{key}: {value}")
    print("latency on the board is emulated (QEMU): not a figure about a real ARM core")
    print(f"host cpu: {describe_cpu()}")
    print(f"(total {time.time() - start:.0f} s)")
    write(complete=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
