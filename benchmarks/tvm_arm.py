"""Benchmark the TVM backend: the bundled digits CNN cross-compiled for aarch64 and run on the emulated
device, and TVM on the host against ONNX Runtime.

    python benchmarks/tvm_arm.py [--json OUT] [--repeats 200] [--rounds 10] [--threads 2] [--tune-trials N]

What it does, all through edgecraft's TVM backend and its core measurement:

* exports ``examples/digits`` (trained residual CNN, 1×1×32×32) to ONNX once;
* builds ``tvm-aarch64`` (cortex-a72), checks the artifact is an aarch64 ELF, runs it on the emulated
  aarch64 device (prepared with ``edgecraft device setup arm64-emulated`` if needed) on 64 real digits
  images and compares with ONNX Runtime on the host;
* builds ``tvm-llvm-host`` (and, with ``--tune-trials N``, a MetaSchedule-tuned variant) and times it
  interleaved with ``ort-cpu`` on the same input (``edgecraft.verify.measure.measure_latency``: warm-up,
  shuffled rounds, fixed threads, batch 1; TVM timed by its own ``time_evaluator``);
* times the emulated device too, as its own row, labelled emulated (it says nothing about a real core).

``--json OUT`` writes the rows plus ``aarch64_elf`` (true when the artifact is an aarch64 ELF),
``aarch64_max_abs_diff`` (emulated device vs ORT on the host, 64 images) and
``host_vs_ort_latency_ratio`` (tvm-llvm-host p50 / ort-cpu p50, untuned; above 1 means TVM is slower).
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

REPO = Path(__file__).resolve().parents[1]


def _export_digits(out: Path) -> Path:
    import torch

    spec = importlib.util.spec_from_file_location("digits_model", REPO / "examples" / "digits" / "model.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.build()
    path = out / "digits.onnx"
    torch.onnx.export(model, (torch.zeros(*module.INPUT_SHAPE),), str(path), input_names=["input"],
                      output_names=["logits"], dynamo=False, opset_version=17,
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return path


def _digits_images(n: int) -> np.ndarray:
    import torch
    from sklearn.datasets import load_digits

    x = torch.from_numpy(load_digits().images[:n].astype(np.float32) / 16.0)[:, None]
    return torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False).numpy()


def _build(backend: Any, onnx_path: Path, target: str, options: Any, out: Path) -> tuple[list[Path], float]:
    out.mkdir(parents=True)
    start = time.perf_counter()
    backend.check_available(target, options)
    files = backend.save(backend.import_onnx(onnx_path, target, options, out), target, options, out)
    return files, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--emulated-repeats", type=int, default=40)
    parser.add_argument("--tune-trials", type=int, default=0, help="also build a MetaSchedule-tuned host variant")
    parser.add_argument("--smoke", action="store_true", help="few timed calls, 16 images: checks the script runs "
                        "(a test does) through the same builds, its figures mean nothing")
    args = parser.parse_args(argv)
    if args.smoke:
        args.repeats, args.rounds, args.emulated_repeats, args.tune_trials = 20, 4, 6, 0

    from edgecraft.backends.onnxruntime.backend import OnnxRuntimeBackend, OrtCpuOptions
    from edgecraft.backends.tvm.backend import AARCH64, HOST, TvmBackend
    from edgecraft.backends.tvm.compile import LIBRARY
    from edgecraft.backends.tvm.device import setup_emulated_device
    from edgecraft.backends.tvm.elf import elf_machine
    from edgecraft.backends.tvm.options import AArch64Options, HostOptions
    from edgecraft.cpu import cpu_summary
    from edgecraft.plan import LatencySpec
    from edgecraft.verify.measure import measure_latency

    tvm_backend, ort_backend = TvmBackend(), OnnxRuntimeBackend()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="edgecraft-bench-tvm-") as tmp_name:
        tmp = Path(tmp_name)
        onnx_path = _export_digits(tmp)
        images = _digits_images(16 if args.smoke else 64)
        ort_out = tmp / "ort"
        ort_opts = OrtCpuOptions()
        ort_out.mkdir()
        ort_backend.save(ort_backend.import_onnx(onnx_path, "ort-cpu", ort_opts, tmp), "ort-cpu", ort_opts, ort_out)
        ort_sess = ort_backend.load(ort_out, "ort-cpu", ort_opts, args.threads)
        reference = ort_sess.run({"input": images})[0]

        # ---- aarch64: build, check the ELF, run on the emulated device
        device = setup_emulated_device(progress=lambda m: print(m, file=sys.stderr))
        a64_opts = AArch64Options(cpu="cortex-a72", device_cache_dir=device.home.parent)
        a64_files, a64_build_s = _build(tvm_backend, onnx_path, AARCH64, a64_opts, tmp / "a64")
        machine = elf_machine(tmp / "a64" / LIBRARY)
        start = time.perf_counter()
        a64_sess = tvm_backend.load(tmp / "a64", AARCH64, a64_opts, args.threads)
        a64_load_s = time.perf_counter() - start
        a64_diff = float(np.max(np.abs(a64_sess.run({"input": images})[0] - reference)))
        feeds = {"input": images[:1]}
        emu = measure_latency({"tvm-aarch64": a64_sess}, feeds,
                              LatencySpec(warmup=5, repeats=args.emulated_repeats, rounds=2,
                                          threads=args.threads))["tvm-aarch64"]
        device_facts = a64_sess.describe()
        a64_sess.close()
        rows.append({"variant": "tvm-aarch64 on emulated device (QEMU)", "p50_ms": emu.p50, "p95_ms": emu.p95,
                     "emulated": True, "size_bytes": tvm_backend.artifact_size(a64_files),
                     "build_s": round(a64_build_s, 1), "max_abs_diff_vs_ort": a64_diff, "elf": machine,
                     "load_s": round(a64_load_s, 1)})

        # ---- host: TVM (untuned, optionally tuned) vs ORT, interleaved
        sessions = {"ort-cpu": ort_sess}
        host_files, host_build_s = _build(tvm_backend, onnx_path, HOST, HostOptions(), tmp / "host")
        sessions["tvm-llvm-host"] = tvm_backend.load(tmp / "host", HOST, HostOptions(), args.threads)
        builds = {"tvm-llvm-host": (host_files, host_build_s)}
        if args.tune_trials:
            tuned_opts = HostOptions(tuning={"trials": args.tune_trials})
            builds["tvm-llvm-host tuned"] = _build(tvm_backend, onnx_path, HOST, tuned_opts, tmp / "tuned")
            sessions["tvm-llvm-host tuned"] = tvm_backend.load(tmp / "tuned", HOST, tuned_opts, args.threads)
        stats = measure_latency(sessions, feeds, LatencySpec(warmup=20, repeats=args.repeats, rounds=args.rounds,
                                                             threads=args.threads))
        for label, session in sessions.items():
            diff = float(np.max(np.abs(session.run({"input": images[:1]})[0] - reference[:1])))
            files, build_s = builds.get(label, ([ort_out / p.name for p in ort_out.iterdir()], 0.0))
            backend = ort_backend if label == "ort-cpu" else tvm_backend
            rows.append({"variant": label, "p50_ms": stats[label].p50, "p95_ms": stats[label].p95,
                         "emulated": False, "size_bytes": backend.artifact_size(files), "build_s": round(build_s, 1),
                         "max_abs_diff_vs_ort": diff, "ratio_vs_ort_p50": stats[label].p50 / stats["ort-cpu"].p50})
            session.close()

    result = {
        "aarch64_elf": machine == "aarch64",
        "aarch64_max_abs_diff": a64_diff,
        "host_vs_ort_latency_ratio": stats["tvm-llvm-host"].p50 / stats["ort-cpu"].p50,
        "threads": args.threads,
        "model": "examples/digits (1x1x32x32, batch 1)",
        "device": device_facts,
        "rows": rows, "smoke": args.smoke, "cpu": cpu_summary(),
    }
    if "tvm-llvm-host tuned" in stats:
        result["tuned_host_vs_ort_latency_ratio"] = stats["tvm-llvm-host tuned"].p50 / stats["ort-cpu"].p50

    print(f"{'variant':40} {'p50 ms':>9} {'p95 ms':>9} {'vs ORT':>7} {'size B':>9} {'max|diff|':>10} emulated")
    for row in rows:
        ratio = row.get("ratio_vs_ort_p50")
        print(f"{row['variant']:40} {row['p50_ms']:9.3f} {row['p95_ms']:9.3f} "
              f"{(f'{ratio:.2f}x' if ratio else '-'):>7} {row['size_bytes']:9d} {row['max_abs_diff_vs_ort']:10.2e} "
              f"{'yes' if row['emulated'] else 'no'}")
    print(f"aarch64_elf={result['aarch64_elf']} aarch64_max_abs_diff={a64_diff:.2e} "
          f"host_vs_ort_latency_ratio={result['host_vs_ort_latency_ratio']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
