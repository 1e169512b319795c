"""Runs inside a network namespace with only loopback (see test_ray_executor.py): starts a real local Ray
cluster of several nodes (``ray.cluster_utils.Cluster``: separate raylets, each with its own custom
resources), runs ``edgecraft run --ray`` against it in scenarios, and writes what it saw as JSON.

    python ray_cluster_driver.py WORKDIR OUT.json

Every node's raylet gets its own TMPDIR, so the driver can tell which node a measurement runs on (the
measure task unpacks artifacts into ``$TMPDIR/edgecraft-shipped-*``) and kill exactly that raylet.
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

NET = '''
import torch
from torch import nn


def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 10)).eval()
'''
SLOT = "edgecraft_timing_slot"


def write_plan(folder: Path, name: str, targets: list[Any], *, repeats: int = 20, rounds: int = 2,
               **sections: Any) -> Path:
    """The tiny net's plan for ``targets``; ``sections`` add or replace top-level plan sections."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "net.py").write_text(NET)
    plan = {
        "schema": "edgecraft.plan/v1", "name": name,
        "model": {"kind": "torch", "factory": "net.py:build", "input_shape": [1, 1, 8, 8],
                  "exporter": "torchscript", "opset": 17},
        "data": {"digits": {"kind": "digits", "image_size": 8, "max_samples": 32}},
        "evaluation": {"dataset": "digits", "metrics": ["agreement"], "batch_size": 16},
        "latency": {"warmup": 2, "repeats": repeats, "rounds": rounds, "threads": 1},
        "targets": targets,
        "contracts": [{"kind": "accuracy", "metric": "agreement", "max_drop": 0.01},
                      {"kind": "latency", "max_ms": 100}],
        **sections,
    }
    path = folder / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def cli(args: list[str], cache: Path) -> list[str]:
    return [sys.executable, "-m", "edgecraft.cli", *args, "--cache-dir", str(cache)]


def run_cli(args: list[str], cache: Path, timeout: float = 300) -> dict[str, Any]:
    started = time.monotonic()
    done = subprocess.run(cli(args, cache), capture_output=True, text=True, timeout=timeout)
    return {"code": done.returncode, "stderr": done.stderr[-4000:], "seconds": round(time.monotonic() - started, 1)}


def main() -> int:
    work, out = Path(sys.argv[1]), Path(sys.argv[2])
    # Find lost nodes fast (defaults take ~30 s); read by the GCS when the head starts.
    os.environ["RAY_health_check_period_ms"] = "1000"  # noqa: SIM112 (Ray reads this exact spelling)
    os.environ["RAY_health_check_failure_threshold"] = "3"  # noqa: SIM112
    os.environ["EDGECRAFT_CACHE_DIR"] = str(work / "node-cache")  # the nodes' own artifact caches
    import ray
    from ray.cluster_utils import Cluster

    result: dict[str, Any] = {}
    tmp = {name: work / f"tmp-{name}" for name in ("b", "c")}
    for folder in tmp.values():
        folder.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "resources": {SLOT: 1, "zone:a": 1}, "include_dashboard": False})
    try:
        # Two CPUs on node b: only the timing slot keeps its two timing tasks apart.
        node_b = cluster.add_node(num_cpus=2, resources={SLOT: 1, "zone:b": 1},
                                  env_vars={"TMPDIR": str(tmp["b"])})
        cluster.wait_for_nodes()
        address = cluster.address
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        ids = {"a": cluster.head_node.node_id, "b": node_b.node_id}
        result["address"] = address
        result["nodes"] = [{"id": n["NodeID"], "address": n["NodeManagerAddress"],
                            "resources": n["Resources"]} for n in ray.nodes()]

        # 1. placement, exclusive timing, node fields
        plan = write_plan(work / "placed", "placed", [
            {"target": "ort-cpu", "name": "on-a", "placement": {"resources": {"zone:a": 1}}},
            {"target": "ort-cpu", "name": "on-b-1", "placement": {"resources": {"zone:b": 1}}},
            {"target": "ort-cpu", "name": "on-b-2", "options": {"saved_optimization": "basic"},
             "placement": {"resources": {"zone:b": 1}}},
        ], repeats=30000, rounds=4)  # ~1 s of timing each: long enough to overlap without the slot
        report = work / "placed.json"
        result["placed"] = run_cli(["run", str(plan), "--ray", address, "--report-json", str(report)],
                                   work / "cli-cache")
        result["placed"]["report"] = json.loads(report.read_text()) if report.is_file() else None
        result["node_ids"] = ids

        # 2. a placement no node offers: exit 3 after the plan's timeout, naming it; the target beside it that
        #    a node can take still runs and the report shows both
        plan = write_plan(work / "nowhere", "nowhere", [
            {"target": "ort-cpu", "name": "riscv", "placement": {"resources": {"arch:riscv64": 1}, "timeout_s": 3}},
            {"target": "ort-cpu", "name": "on-a", "placement": {"resources": {"zone:a": 1}}}])
        report = work / "nowhere.json"
        result["unsatisfiable"] = run_cli(["run", str(plan), "--ray", address, "--report-json", str(report)],
                                          work / "cli-cache")
        result["unsatisfiable"]["report"] = json.loads(report.read_text()) if report.is_file() else None

        # 3. the node timing a target is killed (its raylet): the target is sent to the other eligible node
        node_c = cluster.add_node(num_cpus=1, resources={SLOT: 1, "zone:b": 1}, env_vars={"TMPDIR": str(tmp["c"])})
        cluster.wait_for_nodes()
        ids["c"] = node_c.node_id
        plan = write_plan(work / "lost", "lost", [
            {"target": "ort-cpu", "name": "survivor",
             "placement": {"resources": {"zone:b": 1}, "build_resources": {"zone:a": 1}, "max_retries": 2}}],
            # Rounds sized by time, not by calls: the node must still be timing a second after the shipped
            # folder appears, however fast this CPU runs the tiny net (40000 capped calls took 0.1 s on an EPYC).
            latency={"warmup": 2, "round_ms": 1000, "max_calls": 20_000, "rounds": 12, "threads": 1})
        report = work / "lost.json"
        started = time.monotonic()
        proc = subprocess.Popen(cli(["run", str(plan), "--ray", address, "--report-json", str(report)],
                                    work / "cli-cache"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        killed = None
        while killed is None and time.monotonic() - started < 120 and proc.poll() is None:
            for name, node in (("b", node_b), ("c", node_c)):
                if any(tmp[name].glob("edgecraft-shipped-*")):
                    time.sleep(1.0)  # mid-measurement
                    node.kill_raylet()
                    killed = name
                    break
            time.sleep(0.2)
        _, stderr = proc.communicate(timeout=300)
        result["lost"] = {"code": proc.returncode, "stderr": stderr[-4000:], "killed": killed,
                          "killed_id": ids.get(killed or ""),
                          "report": json.loads(report.read_text()) if report.is_file() else None}
        result["nodes_after"] = [{"id": n["NodeID"], "address": n["NodeManagerAddress"], "alive": n["Alive"]}
                                 for n in ray.nodes()]
    finally:
        ray.shutdown()
        cluster.shutdown()
    out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
