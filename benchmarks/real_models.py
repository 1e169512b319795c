"""Benchmark edgecraft on real pretrained models against the runtimes' own quantizers, in one interleaved run.

    python benchmarks/real_models.py [--smoke] [--json OUT] [--repeats 60] [--rounds 8]

The models are the ones the tests install (read as files from the packages, never downloaded):
PP-OCRv4 text detection and recognition from ``rapidocr_onnxruntime``'s ``models/`` folder, and Silero VAD
from ``silero_vad``'s ``data/``. For the detector and the recognizer, an edgecraft plan (the
``quantization`` step with its defaults, static int8, 16 calibration samples) runs on ``ort-cpu`` and
``openvino-cpu``; the peers get *the same graphs* (edgecraft's fp32 baseline artifact of each target)
and the same calibration samples:

* ``nncf.quantize`` with its default parameters on the OpenVINO baseline IR;
* ``onnxruntime.quantization.quantize_static`` with its default parameters on the ORT baseline ONNX.

Each runtime's variants are timed in one interleaved measurement (``edgecraft.verify.measure.InterleavedTimer``:
warm-up, shuffled rounds, the same input, batch 1, one intra-op thread); ratios are medians of per-round
ratios (see :func:`round_ratio`), on CPU time per call when the wall clock was contended (the gate's rule) and
on each round's median wall time otherwise, so drift of the shared machine hits every variant alike. On OpenVINO the
fp32 model converted *without* the plan's shapes (the ONNX file's symbolic axes kept, as OpenVINO does by
default) is timed in the same group, for ``ov_fp32_static_vs_dynamic_latency_ratio``.

Figures in ``--json``:

* ``ov_int8_vs_nncf_latency_ratio``: {det, rec}: edgecraft's OpenVINO int8 p50 / ``nncf.quantize``'s (goal <= 0.95),
  with ``ov_int8_cosine`` {det, rec: {edgecraft, nncf}}: mean cosine of each int8 model's output to the fp32
  model's on the evaluation images (edgecraft's ``cosine`` metric per sample; goal: edgecraft's >= NNCF's);
  ``ov_int8_identical_to_nncf`` says when edgecraft's IR weights are byte-identical to NNCF's (both NNCF's CPU
  preset on the same graph: the ratio is then timing noise by construction), and
  ``ov_int8_vs_nncf_on_shipped_graph_latency_ratio`` compares with ``nncf.quantize`` on the ONNX file as shipped
  (converted without the plan's shapes, compiled once with its symbolic axes: what a user gets by default);
* ``ov_fp32_static_vs_dynamic_latency_ratio``: detector, fp32 at the plan's shape / fp32 with symbolic axes (<= 0.8);
* ``ort_rec_int8_speedup``: recognizer on ONNX Runtime, fp32 baseline p50 / edgecraft int8 p50 (>= 1.5);
* ``vad_ov_runs``: the VAD plan builds and runs on ``openvino-cpu`` with the plan's shapes, on the package's 16 kHz
  opset-15 export (``silero_vad_16k_op15.onnx``: ``ov.convert_model`` refuses it without input shapes and
  converts it with them); ``vad_ov_by_file`` gives every VAD export's outcome (the default ``silero_vad.onnx``,
  with its 8k/16k ``If`` on the sample rate, does not convert on OpenVINO 2026.4.1 with any shapes: its error);
* ``reported_int8_share_matches_runtime``: for every edgecraft artifact, the report's int8 share agrees (within
  ``SHARE_TOLERANCE``) with what the runtime executes, computed here independently: from ONNX Runtime's
  optimized model (``SessionOptions.optimized_model_filepath``, the session's own optimization level) and
  from OpenVINO's runtime model (each compute layer's ``runtimePrecision``). The share here is weighted by
  weight elements of the compute layers (Conv/MatMul/Gemm and their integer forms); the per-artifact
  values are in ``int8_share``.

``--smoke``: the detector only at 64x64, few calls: seconds-to-a-minute, for the test suite.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from edgecraft.cpu import cpu_summary
from edgecraft.cpu import describe as describe_cpu

HERE = Path(__file__).resolve().parent
CALIBRATION_SAMPLES = 16
EVAL_SAMPLES = 16
SHARE_TOLERANCE = 0.10
THREADS = 1


def round_ratio(numerator: np.ndarray, denominator: np.ndarray) -> float:
    """Median over interleaved rounds of numerator / denominator, each one value per round (the same round's
    blocks saw the same machine state, so drift between rounds cancels)."""
    return float(np.median(np.asarray(numerator) / np.asarray(denominator)))


def package_file(package: str, relative: str) -> Path:
    """A file shipped in an installed package, found without importing it (their imports pull in OpenCV/torchaudio)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{package} is not installed (./scripts/test installs it)")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise SystemExit(f"{package} has no {relative}")
    return path


# ---------------------------------------------------------------- data (synthetic, shaped like the real inputs)
def text_like_images(n: int, height: int, width: int, seed: int) -> np.ndarray:
    """Dark 6-pixel strokes on light paper, normalised as PaddleOCR expects (mean 0.5, std 0.5 per channel); the
    generator of tests/core/test_real_models.py, for any height and width."""
    rng = np.random.default_rng(seed)
    images = np.full((n, 3, height, width), 0.9, np.float32)
    for image in images:
        for _ in range(6):
            row = int(rng.integers(min(8, height - 7), max(min(8, height - 7) + 1, height - 24)))
            col = int(rng.integers(min(8, width - 21), max(min(8, width - 21) + 1, width - 24)))
            length = int(rng.integers(min(20, width // 2 - 1), max(21, width // 2)))
            image[:, row:row + 6, col:col + length] = rng.uniform(0.0, 0.2)
    images += rng.normal(0, 0.02, images.shape).astype(np.float32)
    return (images - 0.5) / 0.5


def vad_feeds(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(512) / 16000
    speech = [np.sin(2 * np.pi * rng.uniform(100, 300) * t) * rng.uniform(0, 0.5) for _ in range(n)]
    audio = (np.stack(speech) + rng.normal(0, 0.01, (n, 512))).astype(np.float32)
    return {"input": audio, "state": np.zeros((n, 2, 128), np.float32), "sr": np.full(n, 16000, np.int64)}


# ---------------------------------------------------------------- edgecraft: one plan per model, each target on its own
def _plan(name: str, model: Path, inputs: dict[str, Any], steps: list[dict[str, Any]], targets: list[str],
          output: str | None = None) -> dict[str, Any]:
    evaluation: dict[str, Any] = {"dataset": "eval", "metrics": ["cosine"], "batch_size": 4}
    if output:
        evaluation["output"] = output
    return {"name": name, "model": {"kind": "onnx", "path": str(model), "inputs": inputs},
            "data": {"calib": {"kind": "npz", "path": "calib.npz", "labels": None},
                     "eval": {"kind": "npz", "path": "eval.npz", "labels": None}},
            "evaluation": evaluation, "steps": steps, "targets": targets,
            "latency": {"threads": THREADS, "warmup": 2, "repeats": 10, "rounds": 2},
            "contracts": [{"kind": "size", "min_ratio": 0.1}]}


def int8_step() -> dict[str, Any]:
    return {"strategy": "quantization", "params": {"mode": "static", "calibration_dataset": "calib",
                                                   "calibration_samples": CALIBRATION_SAMPLES}}


def run_edgecraft(plan: dict[str, Any], base: Path, cache: Path) -> dict[str, Any]:
    """target label -> its TargetReport, or the error text when that target failed."""
    from edgecraft.errors import EdgecraftError
    from edgecraft.plan import RawPlan
    from edgecraft.registry import build_registry
    from edgecraft.runner import run_plan

    out: dict[str, Any] = {}
    for target in plan["targets"]:
        try:
            report = run_plan(RawPlan.model_validate(plan), build_registry(), base_dir=base, cache_dir=cache,
                              targets=[target])
            out[target] = report.targets[0]
        except EdgecraftError as exc:
            out[target] = f"{type(exc).__name__}: {exc}"
    return out


# ---------------------------------------------------------------- peers on the same graphs, same calibration samples
def peer_quantize_static(onnx_path: Path, calib: dict[str, np.ndarray], out_dir: Path) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, quantize_static

    n = len(next(iter(calib.values())))

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter({k: v[i:i + 1] for k, v in calib.items()} for i in range(n))

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    out_dir.mkdir(parents=True, exist_ok=True)
    quantize_static(str(onnx_path), str(out_dir / "model.onnx"), Reader())  # every other argument: default
    return out_dir


def peer_nncf(ir_xml: Path, calib: dict[str, np.ndarray], out_dir: Path) -> Path:
    import nncf
    import openvino as ov

    n = len(next(iter(calib.values())))
    out_dir.mkdir(parents=True, exist_ok=True)
    samples = [{k: v[i:i + 1] for k, v in calib.items()} for i in range(n)]
    quantized = nncf.quantize(ov.Core().read_model(str(ir_xml)), nncf.Dataset(samples))  # defaults
    ov.save_model(quantized, str(out_dir / "model.xml"), compress_to_fp16=False)
    return out_dir


# ---------------------------------------------------------------- what the runtime executes (independent of edgecraft)
ORT_COMPUTE = {"Conv", "MatMul", "Gemm", "FusedConv", "FusedMatMul", "FusedGemm", "NhwcFusedConv", "ConvTranspose"}
ORT_INT8 = {"QLinearConv", "QLinearMatMul", "MatMulInteger", "ConvInteger", "QGemm", "DynamicQuantizeMatMul",
            "MatMulIntegerToFloat", "NhwcQLinearConv", "QAttention"}


def ort_runtime_int8_share(onnx_path: Path, work: Path, level: str = "all") -> float | None:
    """Weight-element share of compute nodes that run integer kernels in ONNX Runtime's optimized graph."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    opts = ort.SessionOptions()
    opts.graph_optimization_level = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
                                     "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                                     "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                                     "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[level]
    optimized = work / f"optimized-{abs(hash(str(onnx_path)))}.onnx"
    opts.optimized_model_filepath = str(optimized)
    ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    model = onnx.load(str(optimized))
    sizes = {t.name: int(np.prod(t.dims)) for t in model.graph.initializer}
    for node in model.graph.node:  # constants folded into nodes
        if node.op_type == "Constant" and node.attribute:
            sizes[node.output[0]] = int(np.size(numpy_helper.to_array(node.attribute[0].t)))
    int8 = total = 0
    for node in model.graph.node:
        if node.op_type not in ORT_COMPUTE | ORT_INT8:
            continue
        weight_slot = 3 if node.op_type in {"QLinearConv", "QLinearMatMul", "NhwcQLinearConv", "QGemm"} else 1
        weight = max((sizes.get(node.input[i], 0) for i in range(len(node.input)) if i == weight_slot), default=0)
        total += weight
        if node.op_type in ORT_INT8:
            int8 += weight
    return int8 / total if total else None


OV_COMPUTE = {"Convolution", "GroupConvolution", "FullyConnected", "MatMul", "Deconvolution"}


def ov_runtime_int8_share(compiled: Any) -> float | None:
    """Weight-element share of compute layers whose runtime precision is u8/i8 in OpenVINO's runtime model."""
    int8 = total = 0
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        layer = info["layerType"].astype(str) if "layerType" in info else ""
        if layer not in OV_COMPUTE or op.get_input_size() < 2:
            continue
        shape = op.input(1).get_partial_shape()
        weight = int(np.prod([d.get_length() for d in shape])) if shape.is_static else 0
        total += weight
        precision = info["runtimePrecision"].astype(str).lower() if "runtimePrecision" in info else ""
        if precision in {"u8", "i8"}:
            int8 += weight
    return int8 / total if total else None


def report_int8_share(target_report: Any) -> float | None:
    compute = target_report.compressed.compute
    return None if compute is None else compute.int8_fraction


# ---------------------------------------------------------------- one model: build, peers, outputs, interleaved timing
def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """edgecraft's ``cosine`` metric for one sample (plugins/metrics/accuracy.py): 1.0 when a norm is zero (a
    detector's probability map of an image without text is all zeros in fp32)."""
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / denom) if denom > 0 else 1.0


def mean_cosine(session: Any, reference: Any, data: dict[str, np.ndarray]) -> float:
    n = len(next(iter(data.values())))
    values = []
    for i in range(n):
        feed = {k: v[i:i + 1] for k, v in data.items()}
        got = np.array(session.run(feed)[0], copy=True)  # runtimes may hand out views of reused buffers
        values.append(cosine(got, np.array(reference.run(feed)[0], copy=True)))
    return float(np.mean(values))


def bench_model(label: str, model: Path, shape: list[Any], calib: np.ndarray, evaluation: np.ndarray, work: Path,
                repeats: int, rounds: int) -> dict[str, Any]:
    """Build edgecraft's artifacts and the peers for one single-input image model; time and compare them."""
    from edgecraft.backends.onnxruntime.backend import OnnxRuntimeBackend, OrtCpuOptions
    from edgecraft.backends.openvino.backend import OpenVinoBackend, OpenVinoCpuOptions
    from edgecraft.backends.openvino.session import OpenVinoSession, compile_config
    from edgecraft.plan import LatencySpec
    from edgecraft.verify.measure import InterleavedTimer
    from edgecraft.verify.stats import contended

    base = work / label
    base.mkdir(parents=True, exist_ok=True)
    np.savez(base / "calib.npz", x=calib)
    np.savez(base / "eval.npz", x=evaluation)
    plan = _plan(label, model, {"x": {"shape": shape}}, [int8_step()], ["ort-cpu", "openvino-cpu"])
    print(f"[{label}] edgecraft run_plan on ort-cpu and openvino-cpu", file=sys.stderr)
    reports = run_edgecraft(plan, base, work / "cache")
    errors = {t: r for t, r in reports.items() if isinstance(r, str)}
    if errors:
        return {"model": label, "errors": errors}
    ort_r, ov_r = reports["ort-cpu"], reports["openvino-cpu"]
    feeds_calib = {"x": calib}
    print(f"[{label}] peers: quantize_static defaults, nncf.quantize defaults", file=sys.stderr)
    # ORT's peer starts from the graph ORT imported (lineage/model.onnx): the saved artifact is already
    # ORT-optimized (folded batch norms), where quantize_static's defaults fail on a bias scale.
    peer_ort = peer_quantize_static(Path(ort_r.baseline.artifact) / "lineage" / "model.onnx", feeds_calib,
                                    base / "peer-ort")
    peer_ov = peer_nncf(Path(ov_r.baseline.artifact) / "model.xml", feeds_calib, base / "peer-nncf")
    # What a user gets from NNCF on the file as shipped (symbolic axes kept): the issue's comparison.
    import openvino as ov

    shipped = base / "shipped"
    shipped.mkdir(exist_ok=True)
    ov.save_model(ov.convert_model(str(model)), str(shipped / "model.xml"), compress_to_fp16=False)
    peer_ov_shipped = peer_nncf(shipped / "model.xml", feeds_calib, base / "peer-nncf-shipped")
    same_as_nncf = (Path(ov_r.compressed.artifact) / "model.bin").read_bytes() == (peer_ov / "model.bin").read_bytes()

    ort, ovb = OnnxRuntimeBackend(), OpenVinoBackend()
    ort_opts, ov_opts = OrtCpuOptions(), OpenVinoCpuOptions()
    dynamic_compiled = ov.Core().compile_model(ov.convert_model(str(model)), "CPU", compile_config(ov_opts, THREADS))
    sessions: dict[str, tuple[str, Any]] = {
        "ort fp32": ("ort", ort.load(Path(ort_r.baseline.artifact), "ort-cpu", ort_opts, THREADS)),
        "ort int8 edgecraft": ("ort", ort.load(Path(ort_r.compressed.artifact), "ort-cpu", ort_opts, THREADS)),
        "ort int8 quantize_static": ("ort", ort.load(peer_ort, "ort-cpu", ort_opts, THREADS)),
        "ov fp32 (plan's shapes)": ("ov", ovb.load(Path(ov_r.baseline.artifact), "openvino-cpu", ov_opts, THREADS)),
        "ov fp32 (symbolic axes)": ("ov", OpenVinoSession(dynamic_compiled, ov_opts, compile_config(ov_opts, THREADS))),
        "ov int8 edgecraft": ("ov", ovb.load(Path(ov_r.compressed.artifact), "openvino-cpu", ov_opts, THREADS)),
        "ov int8 nncf.quantize": ("ov", ovb.load(peer_ov, "openvino-cpu", ov_opts, THREADS)),
        "ov int8 nncf.quantize (symbolic axes)": ("ov", ovb.load(peer_ov_shipped, "openvino-cpu",
                                                                 OpenVinoCpuOptions(static_shapes=False), THREADS)),
    }
    feeds = {"x": evaluation[:1]}
    spec = LatencySpec(warmup=5, repeats=repeats, rounds=rounds, threads=THREADS)
    stats: dict[str, Any] = {}
    per_round: dict[str, np.ndarray] = {}
    basis: dict[str, str] = {}
    for runtime in ("ort", "ov"):  # one group per runtime: ORT's spinning pool would steal OpenVINO's cores
        group = {name: s for name, (rt, s) in sessions.items() if rt == runtime}
        print(f"[{label}] timing {len(group)} {runtime} variants interleaved", file=sys.stderr)
        timer = InterleavedTimer(group, feeds, spec)
        timer.take(rounds)
        stats.update(timer.stats())
        # The gate's rule (edgecraft.verify.gate): CPU time per call when the wall clock was contended (other
        # processes on the 2 shared cores), else the median wall time of each round's block. One thread per
        # session, so CPU time per call is the model's work.
        basis[runtime] = "cpu" if contended({n: timer.cpu_share(n) for n in group}) else "wall"
        for name in group:
            per_round[name] = (timer.cpu_ms_per_call(name) if basis[runtime] == "cpu"
                               else np.median(timer.rounds_ms(name), axis=1))
    eval_feeds = {"x": evaluation}
    rows = []
    for name, (runtime, session) in sessions.items():
        fp32 = sessions["ort fp32" if runtime == "ort" else "ov fp32 (plan's shapes)"][1]
        fp32_name = "ort fp32" if runtime == "ort" else "ov fp32 (plan's shapes)"
        rows.append({"model": label, "variant": name, "p50_ms": round(stats[name].p50, 3),
                     "vs_fp32": round(round_ratio(per_round[fp32_name], per_round[name]), 3),
                     "basis": basis[runtime], "cosine_vs_fp32": round(mean_cosine(session, fp32, eval_feeds), 5),
                     "_samples": per_round[name]})
    shares = {
        "ort": {"report": report_int8_share(ort_r),
                "runtime": ort_runtime_int8_share(Path(ort_r.compressed.artifact) / "model.onnx", base,
                                                  ort_opts.runtime_optimization)},
        "ov": {"report": report_int8_share(ov_r),
               "runtime": ov_runtime_int8_share(sessions["ov int8 edgecraft"][1]._compiled)},
    }
    for _, session in sessions.values():
        session.close()
    return {"model": label, "rows": rows, "int8_share": shares, "rounds": rounds, "same_as_nncf": same_as_nncf}


def row(result: dict[str, Any], variant: str) -> dict[str, Any]:
    return next(r for r in result["rows"] if r["variant"] == variant)


#: The VAD export whose conversion needs the plan's shapes (the figure), then the package's default file.
VAD_FILES = ("data/silero_vad_16k_op15.onnx", "data/silero_vad.onnx")


def vad_on_openvino(work: Path) -> dict[str, Any]:
    """Does a Silero VAD plan (fp32) build and run on openvino-cpu? The outcome for each export in VAD_FILES."""
    by_file: dict[str, Any] = {}
    for relative in VAD_FILES:
        vad = package_file("silero_vad", relative)
        base = work / "vad" / vad.stem
        base.mkdir(parents=True, exist_ok=True)
        np.savez(base / "calib.npz", **vad_feeds(CALIBRATION_SAMPLES, 0))
        np.savez(base / "eval.npz", **vad_feeds(EVAL_SAMPLES, 1))
        inputs = {"input": {"shape": ["batch", 512]}, "state": {"batch_axis": 1}}
        fp32 = run_edgecraft(_plan("vad", vad, inputs, [], ["openvino-cpu"], output="output"), base, work / "cache")
        outcome = fp32["openvino-cpu"]
        by_file[vad.name] = True if not isinstance(outcome, str) else outcome
    first = by_file[Path(VAD_FILES[0]).name]
    return {"vad_ov_runs": first is True, "vad_ov_error": None if first is True else first, "vad_ov_by_file": by_file}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--json", type=Path, help="write rows and top-level figures to this file")
    parser.add_argument("--smoke", action="store_true", help="detector only, 64x64, few calls (for the test suite)")
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args(argv)
    repeats, rounds = (10, 2) if args.smoke else (args.repeats, args.rounds)
    start = time.time()
    det = package_file("rapidocr_onnxruntime", "models/ch_PP-OCRv4_det_infer.onnx")
    rec = package_file("rapidocr_onnxruntime", "models/ch_PP-OCRv4_rec_infer.onnx")
    results: dict[str, dict[str, Any]] = {}
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="edgecraft-realbench-") as tmp:
        work = Path(tmp)
        size = 64 if args.smoke else 320
        results["det"] = bench_model("det", det, ["batch", 3, size, size],
                                     text_like_images(CALIBRATION_SAMPLES, size, size, 0),
                                     text_like_images(4 if args.smoke else EVAL_SAMPLES, size, size, 1),
                                     work, repeats, rounds)
        if not args.smoke:
            results["rec"] = bench_model("rec", rec, ["batch", 3, 48, 320],
                                         text_like_images(CALIBRATION_SAMPLES, 48, 320, 2),
                                         text_like_images(EVAL_SAMPLES, 48, 320, 3), work, repeats, rounds)
            figures.update(vad_on_openvino(work))
    ok = {k: v for k, v in results.items() if "rows" in v}
    figures["ov_int8_vs_nncf_latency_ratio"] = {
        k: round(round_ratio(row(v, "ov int8 edgecraft")["_samples"], row(v, "ov int8 nncf.quantize")["_samples"]), 3)
        for k, v in ok.items()}
    figures["ov_int8_vs_nncf_on_shipped_graph_latency_ratio"] = {
        k: round(round_ratio(row(v, "ov int8 edgecraft")["_samples"],
                             row(v, "ov int8 nncf.quantize (symbolic axes)")["_samples"]), 3)
        for k, v in ok.items()}
    figures["latency_basis"] = {k: sorted({r["basis"] for r in v["rows"]}) for k, v in ok.items()}
    figures["ov_int8_identical_to_nncf"] = {k: v["same_as_nncf"] for k, v in ok.items()}
    figures["ov_int8_cosine"] = {k: {"edgecraft": row(v, "ov int8 edgecraft")["cosine_vs_fp32"],
                                     "nncf": row(v, "ov int8 nncf.quantize")["cosine_vs_fp32"]} for k, v in ok.items()}
    if "det" in ok:
        d = ok["det"]
        figures["ov_fp32_static_vs_dynamic_latency_ratio"] = round(round_ratio(
            row(d, "ov fp32 (plan's shapes)")["_samples"], row(d, "ov fp32 (symbolic axes)")["_samples"]), 3)
    if "rec" in ok:
        figures["ort_rec_int8_speedup"] = row(ok["rec"], "ort int8 edgecraft")["vs_fp32"]
    shares = {f"{k}/{rt}": s for k, v in ok.items() for rt, s in v["int8_share"].items()}
    figures["int8_share"] = shares
    figures["reported_int8_share_matches_runtime"] = bool(shares) and all(
        s["report"] is not None and s["runtime"] is not None and abs(s["report"] - s["runtime"]) <= SHARE_TOLERANCE
        for s in shares.values())
    figures["errors"] = {k: v["errors"] for k, v in results.items() if "errors" in v}
    rows = [r for v in ok.values() for r in v["rows"]]
    for r in rows:
        r.pop("_samples")

    cols = ["model", "variant", "p50_ms", "vs_fp32", "basis", "cosine_vs_fp32"]
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols} if rows else {}
    print("  ".join(c.ljust(widths.get(c, len(c))) for c in cols))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in cols))
    print("(p50_ms: wall clock over all calls. vs_fp32 and every ratio below: median over interleaved rounds of the "
          "per-round ratio, on `basis`: wall = each round's median wall time, cpu = CPU time per call, used when the "
          f"wall clock was contended, as the gate does; batch 1, {THREADS} thread)")
    print()
    for key, value in figures.items():
        print(f"{key}: {value}")
    print(f"cpu: {describe_cpu()}")  # int8 gains depend on these features
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    print(f"load average: {' '.join(load)}  (total {time.time() - start:.0f} s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**figures, "rows": rows, "threads": THREADS, "batch": 1,
                                         "smoke": args.smoke, "calibration_samples": CALIBRATION_SAMPLES,
                                         "load_average": load, "seconds": round(time.time() - start, 1),
                                         "cpu": cpu_summary()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
