"""Runs inside a network namespace with only loopback (see test_ray_search.py): starts a two-node Ray
cluster (``ray.cluster_utils.Cluster``, one CPU and one ``edgecraft_timing_slot`` per node), runs a tiny
``edgecraft search --ray ADDRESS`` against it, and writes what it saw as JSON.

    python ray_search_driver.py WORKDIR OUT.json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from ray_cluster_driver import NET, SLOT  # the sibling driver's tiny model

TRIALS = 4


def write_plan(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "net.py").write_text(NET)
    plan = {
        "schema": "edgecraft.plan/v1", "name": "ray-search",
        "model": {"kind": "torch", "factory": "net.py:build", "input_shape": [1, 1, 8, 8],
                  "exporter": "torchscript", "opset": 17},
        "data": {"digits": {"kind": "digits", "image_size": 8, "max_samples": 32}},
        "evaluation": {"dataset": "digits", "metrics": ["agreement"], "batch_size": 16},
        "latency": {"warmup": 2, "repeats": 2000, "rounds": 3, "threads": 1},
        "steps": [{"strategy": "quantization",
                   "params": {"mode": "static", "calibration_dataset": "digits", "calibration_samples": 16,
                              "accuracy_aware": {"enabled": "off"}}}],
        "targets": ["ort-cpu"],
        "contracts": [{"kind": "accuracy", "metric": "agreement", "max_drop": 0.5},
                      {"kind": "latency", "max_ms": 100}],
        "search": {"trials": TRIALS, "space": {
            "steps[quantization].params.per_channel": {"choices": [True, False]},
            "steps[quantization].params.calibration_samples": {"low": 8, "high": 32}}},
    }
    path = folder / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def main() -> int:
    work, out = Path(sys.argv[1]), Path(sys.argv[2])
    os.environ["EDGECRAFT_CACHE_DIR"] = str(work / "node-cache")  # the nodes' own artifact caches
    import ray
    from ray.cluster_utils import Cluster

    result: dict[str, Any] = {}
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "resources": {SLOT: 1}, "include_dashboard": False})
    try:
        node_b = cluster.add_node(num_cpus=1, resources={SLOT: 1})
        cluster.wait_for_nodes()
        result["address"] = cluster.address
        result["node_ids"] = [cluster.head_node.node_id, node_b.node_id]
        plan = write_plan(work / "plan")
        search_out = work / "search"
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "edgecraft.cli", "search", str(plan), "--ray", cluster.address,
                               "--out", str(search_out), "--cache-dir", str(work / "cli-cache")],
                              capture_output=True, text=True, timeout=600)
        doc = search_out / "search.json"
        result["search"] = {"code": done.returncode, "stderr": done.stderr[-6000:], "stdout": done.stdout[-2000:],
                            "seconds": round(time.monotonic() - started, 1),
                            "doc": json.loads(doc.read_text()) if doc.is_file() else None,
                            "best_plan": (search_out / "best.ort-cpu.plan.yaml").is_file(),
                            "files": sorted(p.name for p in search_out.iterdir()) if search_out.is_dir() else []}
    finally:
        ray.shutdown()
        cluster.shutdown()
    out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
