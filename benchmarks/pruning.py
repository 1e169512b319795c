"""Benchmark the `pruning` strategy on the bundled residual digits CNN, on ONNX Runtime (CPU).

    python benchmarks/pruning.py [--json OUT] [--ratio 0.5] [--sparsity 0.8] [--epochs 4]

One run, three variants of one trained model:

* ``unpruned``: the residual CNN of ``examples/digits`` (its shipped weights, or trained here when
  ``digits_resnet.pt`` is absent);
* ``structured``: ``ratio`` of the channels removed (Torch-Pruning dependency graph, L2 importance,
  round_to 8), then fine-tuned;
* ``unstructured``: ``sparsity`` of the conv/linear weights zeroed (global magnitude), fine-tuned.

Parameters and MACs are counted on the torch model; accuracy is top-1 on the digits test split *on
ONNX Runtime* (what ships); latency is batch-1 p50 on ``onnxruntime`` with 2 intra-op threads, the
three sessions timed interleaved in shuffled rounds (``edgecraft.verify.measure.measure_latency``) on the
same input, so machine drift hits all of them alike. Sizes are of the exported ONNX file, dense and
zipped.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from edgecraft import torchkit
from edgecraft.backend import Session
from edgecraft.cpu import cpu_summary
from edgecraft.datasets import Dataset, load_dataset
from edgecraft.model_source import export_onnx
from edgecraft.modelio import ModelIO, TensorSpec
from edgecraft.models import TorchModel
from edgecraft.plan import LatencySpec
from edgecraft.plugins.datasets.digits import DigitsParams
from edgecraft.plugins.pruning import accounting, engine
from edgecraft.plugins.pruning.params import PruningParams
from edgecraft.verify.measure import measure_latency

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits"
IO = ModelIO((TensorSpec("input", "float32", ("batch", 1, 32, 32), 0),),
             (TensorSpec("output", "float32", ("batch", 10), 0),))


class OrtSession(Session):
    """A plain onnxruntime session with fixed threads (what the ort-cpu backend runs)."""

    def __init__(self, path: Path, threads: int) -> None:
        self._session = torchkit.ort_session(path, threads=threads)

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self._session.get_inputs()]

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return self._session.run(None, dict(feeds))


def load_model(train_epochs: int) -> tuple[torch.nn.Module, str]:
    sys.path.insert(0, str(DIGITS))
    import model as digits_model  # examples/digits/model.py

    if digits_model.WEIGHTS.is_file():
        return digits_model.build(), f"examples/digits weights ({digits_model.WEIGHTS.name})"
    import train as digits_train  # examples/digits/train.py

    module, _ = digits_train.train(epochs=train_epochs)
    return module.eval(), f"examples/digits model trained here ({train_epochs} epochs; no shipped weights)"


def ort_accuracy(path: Path, data: Dataset, threads: int) -> float:
    session = OrtSession(path, threads)
    correct = 0
    for x, y in data.batches(128):
        correct += int((session.run({"input": x})[0].argmax(1) == y).sum())
    return correct / len(data)


def finetuning(data: Dataset, epochs: int, lr: float) -> engine.FineTuning:
    return engine.make_finetuning(torchkit.TorchData(data.bind(IO)), None, epochs=epochs, lr=lr, batch_size=64,
                                  seed=0, where="benchmark")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the figures and rows to this file")
    parser.add_argument("--ratio", type=float, default=0.5, help="structured: fraction of channels removed")
    parser.add_argument("--sparsity", type=float, default=0.8, help="unstructured: fraction of weights zeroed")
    parser.add_argument("--epochs", type=int, default=4, help="fine-tuning epochs after pruning")
    parser.add_argument("--lr", type=float, default=1e-3, help="fine-tuning learning rate (Adam)")
    parser.add_argument("--train-epochs", type=int, default=12, help="training epochs if no shipped weights")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=600, help="timed calls per variant")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--smoke", action="store_true", help="1 fine-tuning epoch on 128 images, few timed calls: "
                        "checks the script runs (a test does), its figures mean nothing")
    args = parser.parse_args(argv)
    if args.smoke:
        args.epochs, args.train_epochs, args.repeats, args.rounds = 1, 1, 40, 4

    torch.manual_seed(0)
    started = time.time()
    train_set = load_dataset("train", DigitsParams(split="train", max_samples=128 if args.smoke else None),
                             base_dir=DIGITS)
    test_set = load_dataset("test", DigitsParams(split="test"), base_dir=DIGITS)
    base, source = load_model(args.train_epochs)
    example = TorchModel(base, IO).example_inputs(1)
    where = "benchmark"

    structured = copy.deepcopy(base)
    t0 = time.time()
    s_facts = engine.prune_structured(structured, example, PruningParams(ratio=args.ratio, round_to=8),
                                      where=where, finetuning=finetuning(train_set, args.epochs, args.lr))
    s_time = time.time() - t0
    unstructured = copy.deepcopy(base)
    t0 = time.time()
    u_facts = engine.prune_unstructured(unstructured, PruningParams(mode="unstructured", ratio=args.sparsity,
                                                                    scope="global"),
                                        where=where, finetuning=finetuning(train_set, args.epochs, args.lr))
    u_time = time.time() - t0

    variants = {"unpruned": base, "structured": structured, "unstructured": unstructured}
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="edgecraft-bench-") as tmp:
        sessions: dict[str, Session] = {}
        for label, module in variants.items():
            module.eval()
            path = Path(tmp) / f"{label}.onnx"
            export_onnx(TorchModel(module, IO), path, opset=18, exporter="dynamo")
            cost = torchkit.model_cost(module, example)
            params, macs = cost.params, cost.macs
            rows[label] = {
                "variant": label, "params": params, "macs": macs,
                "onnx_bytes": path.stat().st_size, "zipped_bytes": accounting.zipped_size(path),
                "top1_ort": ort_accuracy(path, test_set, args.threads),
                "top1_torch": torchkit.top1(module, torchkit.TorchData(test_set.bind(IO))),
            }
            sessions[label] = OrtSession(path, args.threads)
        feeds = {"input": np.ascontiguousarray(test_set.x[:1])}
        spec = LatencySpec(warmup=5 if args.smoke else 50, repeats=args.repeats, rounds=args.rounds,
                           threads=args.threads)
        stats = measure_latency(sessions, feeds, spec)
    base_p50 = stats["unpruned"].p50
    for label, row in rows.items():
        row["p50_ms"] = stats[label].p50
        row["p95_ms"] = stats[label].p95
        row["speedup"] = base_p50 / stats[label].p50
        row["params_ratio"] = row["params"] / rows["unpruned"]["params"]
        row["macs_ratio"] = row["macs"] / rows["unpruned"]["macs"]
        row["drop_pt"] = 100 * (rows["unpruned"]["top1_ort"] - row["top1_ort"])
    rows["unstructured"]["sparsity"] = u_facts["sparsity_reached"]
    rows["structured"]["channel_ratio_removed"] = s_facts["channel_ratio_removed"]

    _print_table(rows, source, args, s_time, u_time)
    result = {
        "structured_speedup": rows["structured"]["speedup"],
        "structured_params_ratio": rows["structured"]["params_ratio"],
        "structured_macs_ratio": rows["structured"]["macs_ratio"],
        "structured_drop_pt": rows["structured"]["drop_pt"],
        "unstructured_sparsity": u_facts["sparsity_reached"],
        "unstructured_speedup": rows["unstructured"]["speedup"],
        "unstructured_drop_pt": rows["unstructured"]["drop_pt"],
        "unstructured_zipped_ratio": rows["unstructured"]["zipped_bytes"] / rows["unpruned"]["zipped_bytes"],
        "unstructured_dense_ratio": rows["unstructured"]["onnx_bytes"] / rows["unpruned"]["onnx_bytes"],
        "model": source, "ratio": args.ratio, "sparsity_target": args.sparsity, "finetune_epochs": args.epochs,
        "threads": args.threads, "latency_calls_per_variant": stats["unpruned"].n,
        "seconds": round(time.time() - started, 1), "smoke": args.smoke, "cpu": cpu_summary(),
        "rows": list(rows.values()),
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


def _print_table(rows: dict[str, dict[str, Any]], source: str, args: argparse.Namespace, s_time: float,
                 u_time: float) -> None:
    print(f"model: {source}; ort-cpu, batch 1, {args.threads} threads, interleaved p50")
    print(f"structured: {args.ratio:.0%} channels, fine-tune {args.epochs} epochs ({s_time:.0f} s); "
          f"unstructured: {args.sparsity:.0%} sparsity, fine-tune {args.epochs} epochs ({u_time:.0f} s)")
    header = (f"{'variant':<13}{'params':>10}{'MACs':>13}{'ONNX B':>10}{'zipped B':>10}{'top1 ORT':>10}"
              f"{'drop pt':>9}{'p50 ms':>9}{'speedup':>9}")
    print(header)
    print("-" * len(header))
    for row in rows.values():
        print(f"{row['variant']:<13}{row['params']:>10,}{row['macs']:>13,}{row['onnx_bytes']:>10,}"
              f"{row['zipped_bytes']:>10,}{row['top1_ort']:>10.4f}{row['drop_pt']:>9.2f}{row['p50_ms']:>9.3f}"
              f"{row['speedup']:>8.2f}x")
    u = rows["unstructured"]
    dense = u["onnx_bytes"] / rows["unpruned"]["onnx_bytes"]
    zipped = u["zipped_bytes"] / rows["unpruned"]["zipped_bytes"]
    print(f"unstructured sparsity reached {u['sparsity']:.4f}: dense ONNX {dense:.2f}x the unpruned size, zipped "
          f"{zipped:.2f}x, measured speedup {u['speedup']:.2f}x (dense kernels multiply the zeros too)")


if __name__ == "__main__":
    main()
