"""Benchmark peak memory and MACs of fp32, int8 and structured-pruned models on ONNX Runtime and OpenVINO.

    python benchmarks/memory.py [--json OUT] [--repeats 5] [--models digits,resnet18]

Drives the product (``edgecraft.runner.run_plan`` with plans built in Python, ``measure: {memory: true}``), so
it measures exactly what a user's memory contract is judged on: the peak memory one model adds to a fresh
process on the target's runtime (runtime loaded as the zero, see ``edgecraft.verify.memory``), at batch 1,
repeated in ``--repeats`` child processes per model.

Models: the bundled digits CNN (``examples/digits``, 1x1x32x32) and a ResNet-18-sized net with random weights
(1x3x224x224, built here). Variants per target: fp32 (the baseline), int8 (the ``quantization`` step: QDQ on
ONNX Runtime, NNCF on OpenVINO) and structured-pruned (``pruning``, half the channels, no fine-tuning).

Checks: ``memory_cv`` (the worst coefficient of variation over the repeats, goal < 5%), and ``macs_match``:
edgecraft's MACs (counted on the artifact's ONNX graph) against an independent count written here (forward
hooks on the torch model's Conv2d/Linear layers, thop-style) within 1%, for fp32 and int8; for the pruned
model, whose class no longer matches its weights, torch's ``FlopCounterMode`` on the saved
``lineage/torch_model.pt2`` program (FLOPs / 2).

``--json OUT`` writes every row plus ``ort_int8_memory_ratio``, ``ov_int8_memory_ratio`` (ResNet-18-sized, fp32
peak / int8 peak), ``pruned_memory_ratio`` (same, pruned, ONNX Runtime), ``ov_pruned_memory_ratio``,
``memory_cv``, ``macs_match``, the CPU's int8 features and the threads.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from edgecraft.cpu import cpu_summary, int8_features
from edgecraft.cpu import describe as describe_cpu

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits"
HERE = Path(__file__).resolve().parent
THREADS = 2
TARGETS = ["ort-cpu", "openvino-cpu"]


def resnet18() -> Any:
    """The ResNet-18-sized net of the quantization benchmark (same layout, random weights, fixed seed)."""
    sys.path.insert(0, str(HERE))
    from bench_models import resnet18 as build

    return build()


def random_images() -> tuple[np.ndarray, None]:
    sys.path.insert(0, str(HERE))
    from bench_models import random_images as images

    return images(32)


# ---------------------------------------------------------------- independent MAC counts
def hook_macs(module: Any, example: Any) -> int:
    """MACs of Conv2d and Linear layers in one forward pass, counted with forward hooks (thop-style)."""
    import torch
    from torch import nn

    total = 0

    def conv(m: nn.Conv2d, _inp: Any, out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() * (m.in_channels // m.groups) * int(np.prod(m.kernel_size))

    def linear(m: nn.Linear, _inp: Any, out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() * m.in_features

    handles = [m.register_forward_hook(conv if isinstance(m, nn.Conv2d) else linear)
               for m in module.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    with torch.no_grad():
        module(example)
    for h in handles:
        h.remove()
    return total


def program_macs(pt2: Path, example: Any) -> int | None:
    """MACs of a saved torch.export program (the pruned model), from torch's FlopCounterMode (FLOPs / 2)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    if not pt2.is_file():
        return None
    module = torch.export.load(str(pt2)).module()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(example)
    return int(counter.get_total_flops() // 2)


# ---------------------------------------------------------------- runs through the product
def _plan(model: dict[str, Any], data: dict[str, Any], step: dict[str, Any] | None, repeats: int) -> Any:
    from edgecraft.plan import RawPlan

    return RawPlan.model_validate({
        "name": "memory-benchmark", "model": model, "data": data, "steps": [step] if step else [],
        "targets": TARGETS,
        "latency": {"threads": THREADS, "warmup": 1, "repeats": 5, "rounds": 1},
        "measure": {"memory": True, "memory_repeats": repeats}})


def _run(plan: Any, base: Path, cache: Path) -> dict[str, Any]:
    from edgecraft.registry import build_registry
    from edgecraft.runner import run_plan

    report = run_plan(plan, build_registry(), base_dir=base, cache_dir=cache)
    return {t.target: t for t in report.targets}


def _row(model: str, target: str, variant: str, m: Any) -> dict[str, Any]:
    mem, comp = m.memory, m.compute
    return {"model": model, "target": target, "variant": variant, "peak_bytes": mem.peak_bytes,
            "min_bytes": mem.min_bytes, "max_bytes": mem.max_bytes, "memory_cv": mem.cv,
            "process_peak_bytes": mem.process_peak_bytes, "size_bytes": m.size_bytes,
            "macs": comp.macs if comp else None, "int8_fraction": comp.int8_fraction if comp else None,
            "params": comp.params if comp else None, "artifact": m.artifact}


def _pruned_onnx(factory: Any, shape: tuple[int, ...], out: Path) -> tuple[Path, int]:
    """Structured pruning (the pruning plugin's engine, half the channels) exported to ONNX, and its hook MACs.

    The fallback while the ``pruning`` step cannot run through ``run_plan`` (its port to typed model I/O is in
    progress on another branch): the pruned model is then measured as an ONNX-source plan's baseline.
    """
    import torch
    from edgecraft.plugins.pruning import engine
    from edgecraft.plugins.pruning.params import PruningParams

    module = factory()
    example = torch.zeros(shape)
    engine.prune_structured(module, example, PruningParams(ratio=0.5, round_to=8), where="benchmark")
    module.eval()
    torch.onnx.export(module, (example,), str(out), input_names=["input"], output_names=["output"],
                      opset_version=17, dynamo=False)
    return out, hook_macs(module, example)


def bench_model(name: str, model: dict[str, Any], data: dict[str, Any], calib: str, base: Path, cache: Path,
                repeats: int, factory: Any, shape: tuple[int, ...]) -> list[dict[str, Any]]:
    from edgecraft.errors import PluginError

    rows: list[dict[str, Any]] = []
    print(f"[{name}] int8 (quantization) on {', '.join(TARGETS)}", file=sys.stderr)
    q = _run(_plan(model, data, {"strategy": "quantization", "params": {"calibration_dataset": calib,
                                                                         "calibration_samples": 32}}, repeats),
             base, cache)
    print(f"[{name}] structured pruning on {', '.join(TARGETS)}", file=sys.stderr)
    pruned_hook_macs: int | None = None
    try:
        p = _run(_plan(model, data, {"strategy": "pruning", "params": {"mode": "structured", "ratio": 0.5,
                                                                        "round_to": 8}}, repeats), base, cache)
        pruned = {t: p[t].compressed for t in TARGETS}
        how = "pruning step via run_plan"
    except PluginError as exc:
        print(f"[{name}] the pruning step failed through run_plan ({str(exc)[:160]}); pruning with the plugin's "
              "engine and measuring the pruned ONNX model through run_plan instead", file=sys.stderr)
        path, pruned_hook_macs = _pruned_onnx(factory, shape, base / f"{name}_pruned.onnx")
        plan = _plan({"kind": "onnx", "path": path.name}, {}, None, repeats)
        p = _run(plan, base, cache)
        pruned = {t: p[t].baseline for t in TARGETS}
        how = "plugin engine + ONNX source via run_plan (the pruning step failed through run_plan)"
    for target in TARGETS:
        rows.append(_row(name, target, "fp32", q[target].baseline))
        rows.append(_row(name, target, "int8", q[target].compressed))
        rows.append(_row(name, target, "pruned", pruned[target]))
        rows[-1]["pruned_via"] = how
        if pruned_hook_macs is not None:
            rows[-1]["independent_macs"] = pruned_hook_macs
    return rows


def check_macs(name: str, factory: Any, shape: tuple[int, ...], rows: list[dict[str, Any]]) -> dict[str, Any]:
    import torch

    example = torch.zeros(shape)
    reference = hook_macs(factory(), example)
    out: dict[str, Any] = {"model": name, "hooks_macs": reference}
    for row in rows:
        if row["model"] != name or row["macs"] is None:
            continue
        if row["variant"] == "pruned":
            independent = row.get("independent_macs") or program_macs(
                Path(row["artifact"]) / "lineage" / "torch_model.pt2", example)
        else:
            independent = reference
        row["independent_macs"] = independent
        row["macs_match"] = independent is not None and abs(row["macs"] - independent) <= 0.01 * independent
    return out


def _mib(n: float | None) -> str:
    return "–" if n is None else f"{n / 2**20:8.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write rows and summary figures here")
    parser.add_argument("--repeats", type=int, default=5, help="child processes per model and target")
    parser.add_argument("--models", default="digits,resnet18")
    parser.add_argument("--smoke", action="store_true", help="the digits model only, 2 child processes each: "
                        "checks the script runs (a test does), its figures mean nothing")
    args = parser.parse_args()
    if args.smoke:  # one model, one runtime (each measurement is a fresh child process: seconds each)
        args.models, args.repeats = "digits", 2
        TARGETS[:] = ["ort-cpu"]
    models = args.models.split(",")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="edgecraft-membench-") as tmp:
        base, cache = Path(tmp), Path(tmp) / "cache"
        for name in ("model.py", "digits_resnet.pt"):
            shutil.copy(DIGITS / name, base / name)
        shutil.copy(HERE / "quantization.py", base / "quantization.py")
        shutil.copy(HERE / "bench_models.py", base / "bench_models.py")
        shutil.copy(Path(__file__), base / "memory_bench.py")
        sys.path.insert(0, str(DIGITS))
        from model import build as digits_build  # examples/digits/model.py

        if "digits" in models:
            rows += bench_model("digits", {"kind": "torch", "factory": "model.py:build", "input_shape": [1, 1, 32, 32]},
                                {"train": {"kind": "digits", "split": "train"}}, "train", base, cache, args.repeats,
                                digits_build, (1, 1, 32, 32))
            check_macs("digits", digits_build, (1, 1, 32, 32), rows)
        if "resnet18" in models:
            rows += bench_model("resnet18", {"kind": "torch", "factory": "memory_bench.py:resnet18",
                                             "input_shape": [1, 3, 224, 224]},
                                {"calib": {"kind": "factory", "factory": "memory_bench.py:random_images"}}, "calib",
                                base, cache, args.repeats, resnet18, (1, 3, 224, 224))
            check_macs("resnet18", resnet18, (1, 3, 224, 224), rows)

    def peak(model: str, target: str, variant: str) -> float | None:
        return next((r["peak_bytes"] for r in rows if (r["model"], r["target"], r["variant"]) == (model, target,
                                                                                                  variant)), None)

    def ratio(model: str, target: str, variant: str) -> float | None:
        a, b = peak(model, target, "fp32"), peak(model, target, variant)
        return a / b if a and b else None

    big = "resnet18" if "resnet18" in models else "digits"
    summary = {
        "ort_int8_memory_ratio": ratio(big, "ort-cpu", "int8"),
        "ov_int8_memory_ratio": ratio(big, "openvino-cpu", "int8"),
        "pruned_memory_ratio": ratio(big, "ort-cpu", "pruned"),
        "ov_pruned_memory_ratio": ratio(big, "openvino-cpu", "pruned"),
        "memory_cv": max(r["memory_cv"] for r in rows),
        "macs_match": all(r.get("macs_match") for r in rows),
        "cpu": cpu_summary(), "cpu_description": describe_cpu(), "int8_features": int8_features(),
        "threads": THREADS, "repeats": args.repeats, "smoke": args.smoke,
    }
    print(f"\n{'model':9} {'target':13} {'variant':7} {'peak MiB':>9} {'range MiB':>19} {'cv %':>5} "
          f"{'proc MiB':>8} {'size MiB':>8} {'MACs (M)':>9} {'int8':>5} {'MACs ok':>7}")
    for r in rows:
        print(f"{r['model']:9} {r['target']:13} {r['variant']:7} {_mib(r['peak_bytes']):>9} "
              f"{_mib(r['min_bytes'])}–{_mib(r['max_bytes'])} {100 * r['memory_cv']:5.1f} "
              f"{_mib(r['process_peak_bytes'])} {_mib(r['size_bytes'])} {r['macs'] / 1e6:9.1f} "
              f"{100 * (r['int8_fraction'] or 0):4.0f}% {r.get('macs_match')!s:>7}")
    print("\n" + "\n".join(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}" for k, v in summary.items()
                            if k != "cpu"))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, **summary}, indent=2))
    # a smoke run's 2 processes per model say nothing about the spread: only the MAC counts must agree
    return 0 if summary["macs_match"] and (args.smoke or summary["memory_cv"] < 0.05) else 1


if __name__ == "__main__":
    raise SystemExit(main())
