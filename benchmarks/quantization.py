"""Benchmark the `quantization` strategy on ONNX Runtime and OpenVINO, against the tools' own defaults.

    python benchmarks/quantization.py [--json OUT] [--repeats 200] [--rounds 10]

Two models, both runtimes, in one run. Each runtime's variants are timed in one interleaved
measurement (``edgecraft.verify.measure.measure_latency``: warm-up, shuffled rounds, same input, 2 intra-op
threads, batch 1), so machine drift hits them alike; ratios are medians of per-round ratios:

* a ResNet-18-sized conv net (11.7 M parameters, 1×3×224×224, random init, built here; random
  weights make accuracy meaningless, so it gives latency and size only);
* the bundled digits model (``examples/digits``, trained residual CNN on 32×32 digits): accuracy.

Variants per model: fp32 on ORT; edgecraft's int8 artifact on ORT (a ``quantization`` plan step run
through ``edgecraft.runner.run_plan``); ``onnxruntime.quantization.quantize_static`` called directly
with its defaults; fp32 on OpenVINO with f32 inference precision; OpenVINO's default precision (bf16
on CPUs with AVX-512 BF16/AMX: its own row, not a baseline); edgecraft's NNCF int8 artifact; and
``nncf.quantize`` called directly with its defaults. Peers get the same exported ONNX graph, the same
calibration samples and the same session options as edgecraft's artifacts.

``--json OUT`` writes every row plus the top-level figures: ``ort_speedup``, ``ort_size_ratio``,
``ov_speedup``, ``ov_size_ratio`` (ResNet-18-sized net, int8 vs f32 on the same runtime),
``digits_drop_pt`` (accuracy points lost on digits, the worse of the two runtimes),
``vs_ort_quantize_static_latency_ratio`` and ``vs_nncf_latency_ratio`` (edgecraft's p50 divided by
the peer's, ResNet-18-sized net, same runtime; below 1 means edgecraft is faster), and
``vs_ort_quantize_static_top1_delta_pt`` / ``vs_nncf_top1_delta_pt`` (digits: peer's drop minus
edgecraft's, in points; >= 0 means edgecraft is at least as accurate).
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

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits"
HERE = Path(__file__).resolve().parent
CALIBRATION_SAMPLES = 64


# ---------------------------------------------------------------- the ResNet-18-sized net (model factory)
def resnet18() -> Any:
    """The shared ResNet-18-sized net (:mod:`bench_models`), as this benchmark's plan factory."""
    from bench_models import resnet18 as build  # this script's folder is sys.path[0]

    return build()


def tiny() -> Any:
    """``--smoke``'s stand-in for the ResNet-18-sized net (:func:`bench_models.tiny_convnet`, 3x32x32)."""
    from bench_models import tiny_convnet

    return tiny_convnet()


def tiny_images() -> tuple[np.ndarray, None]:
    from bench_models import random_images as images

    return images(CALIBRATION_SAMPLES, (3, 32, 32))


def random_images() -> tuple[np.ndarray, None]:
    """Calibration inputs for the random-init net (its accuracy is meaningless; its latency is not)."""
    from bench_models import random_images as images

    return images(CALIBRATION_SAMPLES)


# ---------------------------------------------------------------- edgecraft's artifacts via run_plan
def _plan(model: dict[str, Any], data: dict[str, Any], calib: str, evaluation: dict[str, Any],
          contracts: list[dict[str, Any]]) -> Any:
    from edgecraft.plan import RawPlan

    return RawPlan.model_validate({
        "name": "quantization-benchmark", "model": model, "data": data, "evaluation": evaluation,
        "steps": [{"strategy": "quantization", "name": "int8",
                   "params": {"calibration_dataset": calib, "calibration_samples": CALIBRATION_SAMPLES}}],
        "targets": ["ort-cpu", "openvino-cpu"], "contracts": contracts,
        "latency": {"threads": 2, "warmup": 2, "repeats": 10, "rounds": 2}})


def _edgecraft(plan: Any, base: Path, cache: Path) -> dict[str, Any]:
    from edgecraft.registry import build_registry
    from edgecraft.runner import run_plan

    report = run_plan(plan, build_registry(), base_dir=base, cache_dir=cache)
    return {t.target: t for t in report.targets}


# ---------------------------------------------------------------- peers: the tools called directly with defaults
def _peer_ort(onnx_path: Path, samples: np.ndarray, out_dir: Path) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(samples[i:i + 1] for i in range(len(samples)))

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self._it, None)
            return None if x is None else {"input": x}

    out_dir.mkdir(parents=True, exist_ok=True)
    quantize_static(str(onnx_path), str(out_dir / "model.onnx"), Reader())  # every other argument: default
    return out_dir


def _peer_nncf(onnx_path: Path, samples: np.ndarray, out_dir: Path) -> Path:
    import nncf
    import openvino as ov

    out_dir.mkdir(parents=True, exist_ok=True)
    quantized = nncf.quantize(ov.convert_model(str(onnx_path)),
                              nncf.Dataset([samples[i:i + 1] for i in range(len(samples))]))  # defaults
    ov.save_model(quantized, str(out_dir / "model.xml"), compress_to_fp16=False)
    return out_dir


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file() and f.suffix in (".onnx", ".xml", ".bin"))


# ---------------------------------------------------------------- one model: build, evaluate, time interleaved
def bench_model(label: str, plan: Any, base: Path, cache: Path, calib: np.ndarray, evaluation: Any | None,
                repeats: int, rounds: int, input_shape: tuple[int, ...]) -> list[dict[str, Any]]:
    from edgecraft.backends.onnxruntime.backend import OnnxRuntimeBackend, OrtCpuOptions
    from edgecraft.backends.openvino.backend import OpenVinoBackend, OpenVinoCpuOptions
    from edgecraft.modelio import ModelIO
    from edgecraft.plan import LatencySpec
    from edgecraft.verify.measure import latency_feeds, measure_latency, run_outputs

    print(f"[{label}] building edgecraft artifacts (run_plan on ort-cpu and openvino-cpu)", file=sys.stderr)
    reports = _edgecraft(plan, base, cache)
    ort_r, ov_r = reports["ort-cpu"], reports["openvino-cpu"]
    onnx_fp32 = Path(ort_r.baseline.artifact) / "lineage" / "model.onnx"
    work = cache / f"peers-{label}"
    print(f"[{label}] peers: quantize_static defaults, nncf.quantize defaults", file=sys.stderr)
    peer_ort = _peer_ort(onnx_fp32, calib, work / "ort")
    peer_ov = _peer_nncf(onnx_fp32, calib, work / "nncf")

    ort, ov_backend = OnnxRuntimeBackend(), OpenVinoBackend()
    ort_opts, f32, bf16 = OrtCpuOptions(), OpenVinoCpuOptions(), OpenVinoCpuOptions(inference_precision="bf16")
    variants: dict[str, tuple[str, str, Any, int]] = {
        "ort fp32": ("ort", "fp32", ort.load(Path(ort_r.baseline.artifact), "ort-cpu", ort_opts, 2),
                     ort_r.baseline.size_bytes),
        "ort int8 edgecraft": ("ort", "int8", ort.load(Path(ort_r.compressed.artifact), "ort-cpu", ort_opts, 2),
                               ort_r.compressed.size_bytes),
        "ort int8 quantize_static defaults": ("ort", "int8", ort.load(peer_ort, "ort-cpu", ort_opts, 2),
                                              _size(peer_ort)),
        "ov f32": ("ov", "fp32", ov_backend.load(Path(ov_r.baseline.artifact), "openvino-cpu", f32, 2),
                   ov_r.baseline.size_bytes),
        "ov default precision (bf16)": ("ov", "bf16", ov_backend.load(Path(ov_r.baseline.artifact),
                                                                      "openvino-cpu", bf16, 2),
                                        ov_r.baseline.size_bytes),
        "ov int8 edgecraft (nncf)": ("ov", "int8", ov_backend.load(Path(ov_r.compressed.artifact),
                                                                   "openvino-cpu", f32, 2),
                                     ov_r.compressed.size_bytes),
        "ov int8 nncf.quantize defaults": ("ov", "int8", ov_backend.load(peer_ov, "openvino-cpu", f32, 2),
                                           _size(peer_ov)),
    }
    sessions = {name: v[2] for name, v in variants.items()}
    io = ModelIO.single("input", input_shape)  # the exported graph's one input (and one output)
    feeds = latency_feeds(io, 1, 0, None)
    spec = LatencySpec(warmup=20, repeats=repeats, rounds=rounds, threads=2)
    stats: dict[str, Any] = {}
    # One interleaved group per runtime: ORT's worker threads spin-wait after each call, which would
    # steal cycles from an OpenVINO call timed right after it (and vice versa with OpenVINO's pool).
    for runtime in ("ort", "ov"):
        group = {name: v[2] for name, v in variants.items() if v[0] == runtime}
        print(f"[{label}] timing {len(group)} {runtime} variants interleaved ({repeats} calls each)",
              file=sys.stderr)
        stats.update(measure_latency(group, feeds, spec))
    rows = []
    for name, (runtime, precision, session, size) in variants.items():
        base_name = "ort fp32" if runtime == "ort" else "ov f32"
        row: dict[str, Any] = {
            "model": label, "variant": name, "runtime": runtime, "precision": precision,
            "p50_ms": round(stats[name].p50, 3), "p95_ms": round(stats[name].p95, 3),
            "speedup_vs_fp32": round(ratio_of_medians(stats[base_name].samples, stats[name].samples, rounds), 3),
            "size_bytes": size, "size_ratio_vs_fp32": round(variants[base_name][3] / size, 3),
            "described_precision": session.describe().get("precision"),
            "_samples": stats[name].samples,
        }
        if evaluation is not None:
            outputs = run_outputs(session, evaluation.bind(io), 64)["output"]
            row["top1"] = round(float(np.mean(outputs.argmax(1) == evaluation.y)), 4)
        rows.append(row)
    for row in rows:
        if "top1" in row:
            base_row = next(r for r in rows if r["variant"] == ("ort fp32" if row["runtime"] == "ort" else "ov f32"))
            row["drop_pt"] = round(100 * (base_row["top1"] - row["top1"]), 2)
    for session in sessions.values():
        session.close()
    return rows


def ratio_of_medians(numerator: tuple[float, ...], denominator: tuple[float, ...], rounds: int) -> float:
    """Median over rounds of (numerator's round p50 / denominator's round p50).

    Both sample lists are in measured order, ``rounds`` equal chunks, and chunk i of each was timed
    in the same interleaved round, so per-round ratios cancel the drift between rounds that a ratio
    of overall medians would keep (timing on these shared machines moves by up to 1.6x).
    """
    a = np.array_split(np.asarray(numerator), rounds)
    b = np.array_split(np.asarray(denominator), rounds)
    return float(np.median([np.median(x) / np.median(y) for x, y in zip(a, b, strict=True)]))


def _row(rows: list[dict[str, Any]], model: str, variant: str) -> dict[str, Any]:
    return next(r for r in rows if r["model"] == model and r["variant"] == variant)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--json", type=Path, help="write rows and top-level figures to this file")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--cache", type=Path, help="artifact cache (default: a temporary directory)")
    parser.add_argument("--smoke", action="store_true", help="a tiny conv net instead of the ResNet-18-sized one, "
                        "64 digits test images, few timed calls: checks the script runs (a test does)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.repeats, args.rounds = 20, 4
    from edgecraft.datasets import load_dataset
    from edgecraft.plugins.datasets.digits import DigitsParams as DigitsDataset

    start = time.time()
    with tempfile.TemporaryDirectory(prefix="edgecraft-qbench-") as tmp:
        cache = args.cache or Path(tmp)
        r18, factory, images, side = (("tiny-32", "tiny", "tiny_images", 32) if args.smoke else
                                      ("resnet18-224", "resnet18", "random_images", 224))
        calib_r18, _ = tiny_images() if args.smoke else random_images()
        r18_plan = _plan({"kind": "torch", "factory": f"quantization.py:{factory}", "input_shape": [1, 3, side, side]},
                         {"calib": {"kind": "factory", "factory": f"quantization.py:{images}"}}, "calib",
                         {}, [])
        rows = bench_model(r18, r18_plan, HERE, cache, calib_r18, None, args.repeats, args.rounds,
                           (1, 3, side, side))

        test = load_dataset("test", DigitsDataset(split="test", image_size=32,
                                                  max_samples=64 if args.smoke else None), DIGITS)
        train = load_dataset("train", DigitsDataset(split="train", image_size=32), DIGITS)
        digits_plan = _plan({"kind": "torch", "factory": "model.py:build", "input_shape": [1, 1, 32, 32]},
                            {"train": {"kind": "digits", "split": "train", "image_size": 32},
                             "test": {"kind": "digits", "split": "test", "image_size": 32}}, "train",
                            {"dataset": "test", "metrics": ["top1"]},
                            [{"kind": "accuracy", "metric": "top1", "max_drop": 0.005}])
        rows += bench_model("digits-resnet", digits_plan, DIGITS, cache, train.x[:CALIBRATION_SAMPLES], test,
                            args.repeats, args.rounds, (1, 1, 32, 32))

    ort_e, ort_p = _row(rows, r18, "ort int8 edgecraft"), _row(rows, r18, "ort int8 quantize_static defaults")
    ov_e, ov_p = _row(rows, r18, "ov int8 edgecraft (nncf)"), _row(rows, r18, "ov int8 nncf.quantize defaults")
    figures = {
        "ort_speedup": ort_e["speedup_vs_fp32"], "ort_size_ratio": ort_e["size_ratio_vs_fp32"],
        "ov_speedup": ov_e["speedup_vs_fp32"], "ov_size_ratio": ov_e["size_ratio_vs_fp32"],
        "ov_bf16_speedup": _row(rows, r18, "ov default precision (bf16)")["speedup_vs_fp32"],
        "digits_drop_pt": max(_row(rows, "digits-resnet", "ort int8 edgecraft")["drop_pt"],
                              _row(rows, "digits-resnet", "ov int8 edgecraft (nncf)")["drop_pt"]),
        "vs_ort_quantize_static_latency_ratio": round(
            ratio_of_medians(ort_e["_samples"], ort_p["_samples"], args.rounds), 3),
        "vs_nncf_latency_ratio": round(ratio_of_medians(ov_e["_samples"], ov_p["_samples"], args.rounds), 3),
        "vs_ort_quantize_static_top1_delta_pt": round(
            _row(rows, "digits-resnet", "ort int8 quantize_static defaults")["drop_pt"]
            - _row(rows, "digits-resnet", "ort int8 edgecraft")["drop_pt"], 2),
        "vs_nncf_top1_delta_pt": round(
            _row(rows, "digits-resnet", "ov int8 nncf.quantize defaults")["drop_pt"]
            - _row(rows, "digits-resnet", "ov int8 edgecraft (nncf)")["drop_pt"], 2),
    }
    for row in rows:
        row.pop("_samples")

    cols = ["model", "variant", "p50_ms", "speedup_vs_fp32", "size_bytes", "size_ratio_vs_fp32", "top1", "drop_pt",
            "described_precision"]
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in cols))
    print()
    for key, value in figures.items():
        print(f"{key}: {value}")
    print(f"cpu: {describe_cpu()}")  # int8 and bf16 gains depend on these features
    print(f"(total {time.time() - start:.0f} s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**figures, "rows": rows, "threads": 2, "batch": 1,
                                         "calibration_samples": CALIBRATION_SAMPLES, "smoke": args.smoke,
                                         "cpu": cpu_summary()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
