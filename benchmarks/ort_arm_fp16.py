"""Benchmark ``ort-aarch64`` with ``precision: fp16`` on the emulated aarch64 board (Cortex-A76, FEAT_FP16).

    python benchmarks/ort_arm_fp16.py [--json OUT] [--smoke] [--digits N]

The digits CNN (``examples/digits``, exported to ONNX) is built by the ``ort-aarch64`` target twice, fp32 and
fp16 (ONNX Runtime's float16 converter, float32 I/O), and both are run by onnxruntime 1.27's aarch64 wheel on the
board on the same test images. Figures: ``ort_arm_fp16_top1_drop_pt`` (fp32 minus fp16 top-1, points, both on the
board), ``ort_arm_fp16_share`` (compute ops of the board's executed graph that take float16 inputs; the rest fall
back to float32 behind Casts), ``ort_arm_fp16_vs_fp32_max_abs_diff`` (logits), and the executed ops.
Latency on the board is QEMU's (emulated fp16 arithmetic is slow in QEMU): recorded, not a figure.
``--smoke``: an untrained tiny CNN on 16 8x8 digits (a test runs it; its figures are not the benchmark's).
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


def _model(smoke: bool) -> Any:
    import torch
    from torch import nn

    if not smoke:
        sys.path.insert(0, str(DIGITS))
        from model import build  # examples/digits/model.py: the trained digits ResNet

        return build().eval()
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)).eval()


def measure(n: int, work: Path, *, smoke: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    import torch
    from edgecraft.backends.onnxruntime.aarch64 import TARGET, OrtAarch64Options
    from edgecraft.backends.onnxruntime.backend import OnnxRuntimeBackend
    from edgecraft.datasets import load_dataset
    from edgecraft.plugins.datasets.digits import DigitsParams

    size = 8 if smoke else 32
    src = work / "src.onnx"
    torch.onnx.export(_model(smoke), (torch.zeros(1, 1, size, size),), str(src), input_names=["input"],
                      output_names=["logits"], dynamo=False, opset_version=17,
                      dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}})
    data = load_dataset("test", DigitsParams(split="test", image_size=size, max_samples=n), DIGITS)
    x, y = np.asarray(data.x[:n], dtype=np.float32), np.asarray(data.y[:n])
    backend = OnnxRuntimeBackend()
    out, facts, ms = {}, {}, {}
    for precision in ("fp32", "fp16"):
        options = OrtAarch64Options(precision=precision)
        backend.check_available(TARGET, options)  # the compile-time check: the board's fp16 features
        folder = work / precision
        folder.mkdir()
        backend.save(src, TARGET, options, folder)
        session = backend.load(folder, TARGET, options, 1)
        try:
            out[precision] = session.run({"input": x})[0]
            facts[precision] = session.describe()
            ms[precision] = 1000 * float(np.median(session.timed_runs({"input": x[:1]}, 3)))
        finally:
            session.close()
    top1 = {p: float(np.mean(o.argmax(1) == y)) for p, o in out.items()}
    ran = facts["fp16"]["fp16_executed"]
    row = {"model": "tiny-cnn (smoke, untrained)" if smoke else "digits-resnet", "images": len(y),
           "top1_fp32_arm": top1["fp32"], "top1_fp16_arm": top1["fp16"],
           "executed_ops_fp32": facts["fp32"]["executed_ops"], "executed_ops_fp16": facts["fp16"]["executed_ops"],
           "fp16_by_op": ran["by_op"], "emulated_ms_fp32": round(ms["fp32"], 1),
           "emulated_ms_fp16": round(ms["fp16"], 1)}
    figures = {
        "ort_arm_fp16_top1_drop_pt": round(100 * (top1["fp32"] - top1["fp16"]), 2),
        "ort_arm_fp16_share": ran["fp16_share"],
        "ort_arm_fp16_compute_ops": {"float16": ran["compute_ops_fp16"], "float32": ran["compute_ops_fp32"]},
        "ort_arm_fp16_vs_fp32_max_abs_diff": float(np.max(np.abs(out["fp16"] - out["fp32"]))),
        "ort_arm_fp16_top1_disagreement": int(np.sum(out["fp16"].argmax(1) != out["fp32"].argmax(1))),
        "board": {k: facts["fp16"].get(k) for k in ("device", "qemu_cpu", "runtime", "cpu_features")},
    }
    return row, figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--json", type=Path, help="write rows and figures to this file")
    parser.add_argument("--smoke", action="store_true", help="16 8x8 digits, untrained tiny CNN (seconds)")
    parser.add_argument("--digits", type=int, default=360, help="test images (the split has 360)")
    args = parser.parse_args(argv)
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="edgecraft-ortarm-fp16-") as tmp:
        row, figures = measure(16 if args.smoke else args.digits, Path(tmp), smoke=args.smoke)
    for key, value in row.items():
        print(f"{key}: {value}")
    print()
    for key, value in figures.items():
        print(f"{key}: {value}")
    print("latency on the board is emulated (QEMU): not a figure about a real ARM core")
    print(f"host cpu: {describe_cpu()}")
    print(f"(total {time.time() - start:.0f} s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**figures, "rows": [row], "smoke": args.smoke, "threads": 1,
                                         "host_cpu": cpu_summary()}, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
