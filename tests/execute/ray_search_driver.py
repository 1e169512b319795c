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

sys.path.insert(0, str(Path(__file__).parent))
from ray_cluster_driver import SLOT
from ray_cluster_driver import write_plan as write_tiny_plan  # the sibling driver's tiny net

TRIALS = 4


def write_plan(folder: Path) -> Path:
    return write_tiny_plan(folder, "ray-search", ["ort-cpu"], repeats=2000, rounds=3, steps=[
        {"strategy": "quantization", "params": {"mode": "static", "calibration_dataset": "digits",
                                                "calibration_samples": 16, "accuracy_aware": {"enabled": "off"}}}],
        contracts=[{"kind": "accuracy", "metric": "agreement", "max_drop": 0.5}, {"kind": "latency", "max_ms": 100}],
        search={"trials": TRIALS, "space": {
            "steps[quantization].params.per_channel": {"choices": [True, False]},
            "steps[quantization].params.calibration_samples": {"low": 8, "high": 32}}})


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
