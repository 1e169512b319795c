"""Low-rank factorization on ort-cpu: size, MACs, accuracy before/after recovery, and measured latency.

    python benchmarks/factorization.py [--json OUT] [--target 0.5] [--epochs 3] [--recover finetune]

Two models: the bundled digits CNN (examples/digits, a residual CNN on 32×32 upsampled digits) and
an MLP-heavy model (four Linear layers on the flattened 32×32 image, trained here in seconds).
For each: the original, the factorized model (greedy per-layer ranks to a parameter target, chosen
by measured sensitivity on 256 training images) without and with recovery, and a latency-aware
factorization (per-layer candidates timed on ONNX Runtime; slower ones dropped; the target is then
a fraction of the summed per-layer latency). Accuracy is top-1 on the digits test split measured on
ONNX Runtime; latency is batch 1, two threads, all variants of a model interleaved in shuffled
rounds (edgecraft's own measurement), repeated in blocks whose ratios are reported by their median.
Fewer MACs is not automatically less time: the table says so when a factorized model is slower.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from edgecraft.cpu import cpu_summary
from edgecraft.datasets import Dataset, load_dataset
from edgecraft.loading import load_callable
from edgecraft.model_source import export_onnx
from edgecraft.modelio import ModelIO, TensorSpec
from edgecraft.models import TorchModel
from edgecraft.plan import LatencySpec
from edgecraft.plugins.datasets.digits import DigitsParams
from edgecraft.plugins.factorization.cost import model_cost
from edgecraft.plugins.factorization.engine import FactorizationConfig, factorize_model
from edgecraft.plugins.factorization.recovery import distill_from, finetune
from edgecraft.plugins.factorization.selection import TargetUnreachable
from edgecraft.registry import build_registry
from edgecraft.torchkit import TorchData
from edgecraft.verify.measure import latency_feeds, measure_latency, run_outputs
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
THREADS = 2


class DigitsMLP(nn.Module):
    """An MLP-heavy model: nearly all of its ~0.9 M parameters are in dense Linear layers."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(1024, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                                  nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


IO = ModelIO((TensorSpec("input", "float32", ("batch", 1, 32, 32), 0),),
             (TensorSpec("output", "float32", ("batch", 10), 0),))


def bound(data: Dataset) -> TorchData:
    return TorchData(data.bind(IO))


def train_mlp(train: Dataset, seed: int = 0, epochs: int = 25) -> nn.Module:
    torch.manual_seed(seed)
    model = DigitsMLP()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    x, y = torch.from_numpy(train.x), torch.from_numpy(train.y)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x))
        for start in range(0, len(x), 64):
            idx = order[start:start + 64]
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            optimizer.step()
    return model.eval()


@dataclass
class Variant:
    name: str
    module: nn.Module
    params: int
    macs: int
    note: str = ""
    facts: dict[str, Any] = field(default_factory=dict)
    top1: float | None = None
    p50_ms: float | None = None
    latency_ratio: float | None = None


def _variant(name: str, module: nn.Module, example: torch.Tensor, note: str = "", **facts: Any) -> Variant:
    cost = model_cost(module, example)
    return Variant(name, module, cost.params, cost.macs, note, facts)


def factorize_variants(label: str, model: nn.Module, train: Dataset, args: argparse.Namespace,
                       target: float) -> list[Variant]:
    example = [torch.from_numpy(train.x[:1])]
    samples = 32 if args.smoke else 256
    data = bound(train).subset(np.arange(len(train) - samples, len(train)))
    variants = [_variant("original", model, example)]

    started = time.perf_counter()
    # --smoke: three candidate ranks per layer (the selection and the ORT timing of each candidate dominate)
    few = {"candidates": (0.125, 0.25, 0.5), "calibration_samples": 32} if args.smoke else {}
    result = factorize_model(model, example, FactorizationConfig(selection="target", target=target,
                                                                 cost="params", threads=THREADS, **few), data)
    seconds = time.perf_counter() - started
    ranks = {layer.name: list(layer.chosen.ranks) for layer in result.factorized}
    print(f"[{label}] factorized {len(ranks)} layers in {seconds:.0f} s: {ranks}", file=sys.stderr)
    variants.append(_variant("factorized", result.module, example, f"params target {target:g}", ranks=ranks,
                             selection_seconds=round(seconds, 1)))
    recovered = copy.deepcopy(result.module)
    facts = _recover(recovered, model, train, args)
    variants.append(_variant(f"factorized+{args.recover}", recovered, example, f"{args.epochs} epochs", **facts))

    started = time.perf_counter()
    try:
        aware = factorize_model(model, example, FactorizationConfig(
            selection="target", target=args.latency_target, cost="latency", latency="ort", threads=THREADS, **few),
            data)
    except TargetUnreachable as exc:
        print(f"[{label}] latency-aware: {exc}", file=sys.stderr)
        return variants
    seconds = time.perf_counter() - started
    aware_ranks = {layer.name: list(layer.chosen.ranks) for layer in aware.factorized}
    print(f"[{label}] latency-aware ({seconds:.0f} s): {aware_ranks}", file=sys.stderr)
    slower = [layer.name for layer in aware.layers if layer.reason.startswith("every candidate was slower")]
    if slower:
        print(f"[{label}] left alone, every factorization slower on ORT: {slower}", file=sys.stderr)
    aware_module = copy.deepcopy(aware.module)
    facts = _recover(aware_module, model, train, args)
    variants.append(_variant(f"latency-aware+{args.recover}", aware_module, example,
                             f"ORT-timed layers, latency target {args.latency_target:g}", ranks=aware_ranks,
                             slower_on_ort=slower, **facts))
    return variants


def _recover(module: nn.Module, original: nn.Module, train: Dataset, args: argparse.Namespace) -> dict[str, Any]:
    if args.recover == "distill":
        return distill_from(original, module, bound(train), epochs=args.epochs, lr=args.lr, batch_size=64, seed=0)
    return finetune(module, bound(train), epochs=args.epochs, lr=args.lr, batch_size=64, seed=0)


def measure(label: str, variants: list[Variant], shape: tuple[int, ...], test: Dataset, work: Path,
            spec: LatencySpec, blocks: int) -> None:
    """Build each variant as an ort-cpu artifact with edgecraft's backend, then measure accuracy and latency."""
    registry = build_registry()
    backend, info = registry.target("ort-cpu")
    options = info.options_model()
    sessions = {}
    for index, variant in enumerate(variants):
        folder = work / f"{label}-{index}"
        folder.mkdir(parents=True)
        onnx_model = export_onnx(TorchModel(variant.module.eval(), IO), folder / "model.onnx")
        artifact = folder / "artifact"
        artifact.mkdir()
        backend.save(backend.import_onnx(onnx_model.path, "ort-cpu", options, folder), "ort-cpu", options, artifact)
        session = backend.load(artifact, "ort-cpu", options, THREADS)
        outputs = run_outputs(session, test.bind(IO), 128, label=variant.name)["output"]
        variant.top1 = float((outputs.argmax(1) == test.y).mean())
        sessions[variant.name] = session
    feeds = latency_feeds(IO, 1, 0, test.bind(IO))
    per_block: list[dict[str, float]] = []
    for block in range(blocks):
        stats = measure_latency(sessions, feeds, spec.model_copy(update={"seed": block}))
        per_block.append({name: s.p50 for name, s in stats.items()})
    base = variants[0].name
    for variant in variants:
        variant.p50_ms = statistics.median(b[variant.name] for b in per_block)
        variant.latency_ratio = statistics.median(b[variant.name] / b[base] for b in per_block)


def print_table(label: str, variants: list[Variant]) -> None:
    base = variants[0]
    print(f"\n{label}")
    print(f"{'variant':28} {'params':>9} {'ratio':>6} {'MACs':>11} {'ratio':>6} {'top1':>7} {'drop pt':>8} "
          f"{'p50 ms':>7} {'vs orig':>8}  note")
    for v in variants:
        assert v.top1 is not None and base.top1 is not None and v.p50_ms is not None and v.latency_ratio is not None
        slower = "  SLOWER than the original" if v is not base and v.latency_ratio > 1.0 else ""
        print(f"{v.name:28} {v.params:9d} {v.params / base.params:6.3f} {v.macs:11d} {v.macs / base.macs:6.3f} "
              f"{v.top1:7.4f} {100 * (base.top1 - v.top1):8.2f} {v.p50_ms:7.3f} {v.latency_ratio:7.3f}x  "
              f"{v.note}{slower}")


def rows(label: str, variants: list[Variant]) -> list[dict[str, Any]]:
    base = variants[0]
    assert base.top1 is not None
    out = []
    for v in variants:
        assert v.top1 is not None
        out.append({"model": label, "variant": v.name, "params": v.params, "params_ratio": v.params / base.params,
                    "macs": v.macs, "macs_ratio": v.macs / base.macs, "top1": v.top1,
                    "drop_pt": 100 * (base.top1 - v.top1), "p50_ms": v.p50_ms, "latency_ratio": v.latency_ratio,
                    "note": v.note, **{k: val for k, val in v.facts.items() if k != "train_loss"}})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="write rows and top-level figures here")
    parser.add_argument("--target", type=float, default=0.15, help="fraction of parameters kept (digits CNN)")
    parser.add_argument("--mlp-target", type=float, default=0.3, help="fraction of parameters kept (MLP)")
    parser.add_argument("--latency-target", type=float, default=0.8,
                        help="latency-aware variant: fraction of summed per-layer ORT latency kept")
    parser.add_argument("--epochs", type=int, default=3, help="recovery epochs")
    parser.add_argument("--lr", type=float, default=5e-4, help="recovery learning rate")
    parser.add_argument("--recover", choices=["finetune", "distill"], default="finetune")
    parser.add_argument("--repeats", type=int, default=300, help="timed calls per variant per block")
    parser.add_argument("--blocks", type=int, default=3, help="interleaved latency blocks (ratios: median)")
    parser.add_argument("--smoke", action="store_true", help="1 epoch of training and recovery, few timed calls: "
                        "checks the script runs (a test does), its figures mean nothing")
    args = parser.parse_args()
    if args.smoke:
        args.epochs, args.repeats, args.blocks = 1, 20, 1
    torch.set_num_threads(THREADS)
    started = time.perf_counter()

    image_train = load_dataset("train", DigitsParams(split="train", max_samples=320 if args.smoke else None), ROOT)
    image_test = load_dataset("test", DigitsParams(split="test"), ROOT)
    build = load_callable("examples/digits/model.py:build", ROOT, field="benchmark model")
    cnn = build().eval()
    mlp = train_mlp(image_train, epochs=1 if args.smoke else 25)

    spec = LatencySpec(warmup=5 if args.smoke else 30, repeats=args.repeats, rounds=4 if args.smoke else 10,
                       threads=THREADS)
    results: dict[str, list[Variant]] = {}
    with tempfile.TemporaryDirectory(prefix="edgecraft-bench-factorization-") as tmp:
        for label, model, target in (("digits CNN (examples/digits)", cnn, args.target),
                                     ("digits MLP (1024-512-512-256-10)", mlp, args.mlp_target)):
            variants = factorize_variants(label, model, image_train, args, target)
            measure(label, variants, (1, 1, 32, 32), image_test, Path(tmp), spec, args.blocks)
            print_table(label, variants)
            results[label] = variants

    cnn_variants = next(iter(results.values()))
    base, fact, rec = cnn_variants[0], cnn_variants[1], cnn_variants[2]
    assert base.top1 is not None and fact.top1 is not None and rec.top1 is not None
    summary = {
        "params_ratio": fact.params / base.params,
        "macs_ratio": fact.macs / base.macs,
        "drop_pt_before_recovery": 100 * (base.top1 - fact.top1),
        "drop_pt_after_recovery": 100 * (base.top1 - rec.top1),
        "latency_ratio": rec.latency_ratio,
    }
    print("\n" + "  ".join(f"{k}={v:.3f}" for k, v in summary.items()) + f"  ({time.perf_counter() - started:.0f} s)")
    if args.json:
        payload = {**summary, "recover": args.recover, "epochs": args.epochs, "threads": THREADS,
                   "smoke": args.smoke, "cpu": cpu_summary(),
                   "rows": [row for label, variants in results.items() for row in rows(label, variants)]}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2, default=float))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
