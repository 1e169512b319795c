"""Runs inside a loopback-only network namespace (see test_ray_board.py): a Ray head on this host and a Ray
worker node *inside the emulated aarch64 board* (``edgecraft.board_ray``: Ray's aarch64 raylet and workers under
QEMU), then ``edgecraft run --ray`` with ``ort-aarch64`` ``device: local`` placed on the board's node; then stops
the node and lists any emulated process left in the namespace. Writes what it saw as JSON.

    python ray_board_driver.py WORKDIR OUT.json

The plan's model is an ONNX file and its data .npz files (written here, with torch and sklearn on the host):
the board's node recompiles the plan and has neither torch nor sklearn, only what a board needs.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

SLOT = "edgecraft_timing_slot"
BOARD = "board:emulated"


def write_model_and_data(folder: Path) -> None:
    """A small CNN trained on sklearn's digits, exported to ONNX; 256 training and 96 test images as .npz."""
    import torch
    from sklearn.datasets import load_digits
    from torch import nn

    torch.manual_seed(0)
    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None]
    y = bunch.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(y))
    train, test = order[:600], order[1200:]
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1, stride=2),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    xt, yt = torch.from_numpy(x[train]), torch.from_numpy(y[train])
    for _ in range(80):
        opt.zero_grad()
        nn.functional.cross_entropy(model(xt), yt).backward()
        opt.step()
    model.eval()
    folder.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(model, (torch.zeros(1, 1, 8, 8),), str(folder / "model.onnx"), input_names=["input"],
                      output_names=["logits"], dynamo=False, opset_version=17,
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    np.savez(folder / "train.npz", input=x[train[:256]], y=y[train[:256]])
    np.savez(folder / "test.npz", input=x[test[:96]], y=y[test[:96]])


def write_plan(folder: Path, name: str, contracts: list[dict[str, Any]]) -> Path:
    plan = {
        "schema": "edgecraft.plan/v1", "name": name,
        "model": {"kind": "onnx", "path": "model.onnx"},
        "data": {"train": {"kind": "npz", "path": "train.npz"}, "test": {"kind": "npz", "path": "test.npz"}},
        "evaluation": {"dataset": "test", "metrics": ["top1", "agreement"], "batch_size": 96},
        "latency": {"warmup": 1, "round_ms": 1, "min_calls": 3, "max_calls": 5, "rounds": 1, "threads": 1},
        # accuracy_aware off: its loop evaluates candidates while building, and the build runs on the host,
        # where device: local has no board (the contract's verdict, measured on the board, speaks instead).
        "steps": [{"strategy": "quantization", "params": {"mode": "static", "calibration_dataset": "train",
                                                          "calibration_samples": 64,
                                                          "accuracy_aware": {"enabled": "off"}}}],
        "targets": [{"target": "ort-aarch64", "name": "board", "options": {"device": "local"},
                     "placement": {"resources": {BOARD: 1}, "build_resources": {"host:x86": 1},
                                   "timeout_s": 600, "max_retries": 0}}],
        "contracts": contracts,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def run_cli(plan: Path, address: str, work: Path, report: Path | None) -> dict[str, Any]:
    args = [sys.executable, "-m", "edgecraft.cli", "run", str(plan), "--ray", address,
            "--cache-dir", str(work / "cli-cache")]
    if report is not None:
        args += ["--report-json", str(report)]
    started = time.monotonic()
    done = subprocess.run(args, capture_output=True, text=True, timeout=900)
    return {"code": done.returncode, "stderr": done.stderr[-4000:], "seconds": round(time.monotonic() - started, 1),
            "report": json.loads(report.read_text()) if report is not None and report.is_file() else None}


def board_processes(wait: float) -> list[str]:
    """Emulated (QEMU) processes still alive in this network namespace, after up to ``wait`` s for them to end:
    the node's ``stop`` must leave none (its raylet, agents and workers all run under QEMU)."""
    import os

    mine = os.readlink("/proc/self/ns/net")
    deadline = time.monotonic() + wait
    while True:
        left = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if os.readlink(f"/proc/{pid}/ns/net") != mine:
                    continue
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "qemu-aarch64" in cmdline:
                left.append(cmdline[:200])
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


def main() -> int:
    work, out = Path(sys.argv[1]), Path(sys.argv[2])
    import ray
    from edgecraft.board_ray import start_ray_node
    from ray.cluster_utils import Cluster

    result: dict[str, Any] = {"host_machine": platform.machine()}
    started = time.monotonic()
    write_model_and_data(work)
    result["model_seconds"] = round(time.monotonic() - started, 1)
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "resources": {SLOT: 1, "host:x86": 1}, "include_dashboard": False})
    node = None
    try:
        started = time.monotonic()
        node = start_ray_node(cluster.address, {BOARD: 1, SLOT: 1}, num_cpus=1, node_ip="127.0.0.1")
        result["node_start_seconds"] = round(time.monotonic() - started, 1)
        ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(n["Alive"] and BOARD in n["Resources"] for n in ray.nodes()):
            time.sleep(0.5)
        result["nodes"] = [{"id": n["NodeID"], "address": n["NodeManagerAddress"], "alive": n["Alive"],
                            "resources": n["Resources"]} for n in ray.nodes()]
        ray.shutdown()

        # 1. measured on the board's node: aarch64, ARM integer kernels, latency labelled emulated
        plan = write_plan(work, "on-board", [
            {"kind": "accuracy", "metric": "top1", "max_drop": 0.03},
            {"kind": "latency", "max_ms": 60000, "allow_emulated": True}])
        result["run"] = run_cli(plan, cluster.address, work, work / "on-board.json")
    finally:
        if node is not None:
            result["node_log_tail"] = node.log_tail(30)
            started = time.monotonic()
            node.stop()
            result["node_stop_seconds"] = round(time.monotonic() - started, 1)
            result["board_processes_after_stop"] = board_processes(wait=15)
        cluster.shutdown()
    out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
