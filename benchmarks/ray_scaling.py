"""The Ray executor's overhead: the same plans run in-process and on a local Ray cluster, with the same work.

    python benchmarks/ray_scaling.py --json OUT [--models 3] [--repeats 3000] [--rounds 10]

Several models (CNNs of growing width on 64×64 digits) × two ``ort-cpu`` variants, each target sized to
take tens of seconds (evaluation + interleaved timing). Each plan runs twice through the CLI, fresh caches
both times: in-process, then with ``--ray ADDRESS`` against a one-node local cluster started with
``num_cpus=1`` and one timing slot, so Ray runs the targets one at a time exactly like the in-process run
(on one 2-core machine Ray cannot be faster: the point is what sending work through it costs). Reported:
``wall_s_inprocess``, ``wall_s_ray``, the overhead per target, the cluster's start-up (paid once per
cluster, not per run), and whether every verdict agrees.

Ray advertises the machine's address even when told 127.0.0.1, so the script re-executes itself inside a
network namespace with only loopback up (needs root and ``ip``), and stops the cluster before deleting it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

NET = '''
import torch
from torch import nn


def cnn(width):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1),
                         nn.ReLU(), nn.Conv2d(width, 2 * width, 3, padding=1, stride=2), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, 10)).eval()


def w16():
    return cnn(16)


def w24():
    return cnn(24)


def w32():
    return cnn(32)


def w48():
    return cnn(48)
'''
MODELS = ["w16", "w24", "w32", "w48"]


def write_plans(folder: Path, models: list[str], repeats: int, rounds: int) -> list[Path]:
    import yaml

    (folder / "net.py").write_text(NET)
    plans = []
    for model in models:
        plan = {
            "schema": "edgecraft.plan/v1", "name": f"scaling-{model}",
            "model": {"kind": "torch", "factory": f"net.py:{model}", "input_shape": [1, 1, 64, 64],
                      "exporter": "torchscript", "opset": 17},
            "data": {"digits": {"kind": "digits", "image_size": 64, "max_samples": 256}},
            "evaluation": {"dataset": "digits", "metrics": ["agreement"], "batch_size": 32},
            "latency": {"warmup": 20, "repeats": repeats, "rounds": rounds, "threads": 1},
            "targets": [{"target": "ort-cpu", "name": "ort-extended"},
                        {"target": "ort-cpu", "name": "ort-basic", "options": {"saved_optimization": "basic"}}],
            "contracts": [{"kind": "accuracy", "metric": "agreement", "max_drop": 0.01},
                          {"kind": "latency", "max_ms": 1000},
                          {"kind": "latency", "min_speedup": 0.5}],
        }
        path = folder / f"plan-{model}.yaml"
        path.write_text(yaml.safe_dump(plan))
        plans.append(path)
    return plans


def run_cli(plan: Path, cache: Path, report: Path, ray: str | None) -> dict[str, Any]:
    argv = [sys.executable, "-m", "edgecraft.cli", "run", str(plan), "-q", "--cache-dir", str(cache),
            "--report-json", str(report)] + (["--ray", ray] if ray else [])
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return {"wall_s": wall, "code": done.returncode, "report": json.loads(report.read_text())}


def verdicts(report: dict[str, Any]) -> dict[str, str]:
    return {f"{t['target']}/{v['name']}": v["status"] for t in report["targets"] for v in t["contracts"]}


def inside(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="edgecraft-ray-scaling-"))
    plans = write_plans(work, MODELS[:args.models], args.repeats, args.rounds)
    os.environ["EDGECRAFT_CACHE_DIR"] = str(work / "node-cache")  # the cluster node's own cache (fresh)
    import ray
    from edgecraft import cpu
    from ray.cluster_utils import Cluster

    rows = []
    load_before = os.getloadavg()
    started = time.monotonic()
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "resources": {"edgecraft_timing_slot": 1}, "include_dashboard": False})
    cluster_start_s = time.monotonic() - started
    try:
        ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
        addresses = sorted({n["NodeManagerAddress"] for n in ray.nodes()})
        ray.shutdown()
        for plan in plans:
            local = run_cli(plan, work / "cli-cache", work / f"{plan.stem}-local.json", None)
            remote = run_cli(plan, work / "cli-cache-ray", work / f"{plan.stem}-ray.json", cluster.address)
            n_targets = len(local["report"]["targets"])
            same = verdicts(local["report"]) == verdicts(remote["report"])
            p50 = {t["target"]: t["compressed"]["latency_ms"]["p50"] for t in local["report"]["targets"]}
            p50_ray = {t["target"]: t["compressed"]["latency_ms"]["p50"] for t in remote["report"]["targets"]}
            rows.append({
                "plan": plan.stem, "targets": n_targets,
                "wall_s_inprocess": round(local["wall_s"], 2), "wall_s_ray": round(remote["wall_s"], 2),
                "overhead_s_per_target": round((remote["wall_s"] - local["wall_s"]) / n_targets, 2),
                "overhead_pct": round(100 * (remote["wall_s"] - local["wall_s"]) / local["wall_s"], 1),
                "seconds_per_target_inprocess": round(local["wall_s"] / n_targets, 1),
                "verdicts_agree": same, "verdicts_inprocess": verdicts(local["report"]),
                "verdicts_ray": verdicts(remote["report"]),
                "p50_ms_inprocess": p50, "p50_ms_ray": p50_ray,
                "measured_on": sorted({t["measured_on"]["address"] for t in remote["report"]["targets"]}),
            })
            print(json.dumps({k: v for k, v in rows[-1].items() if not k.startswith("verdicts_")}), flush=True)
    finally:
        cluster.shutdown()
    total_local = sum(r["wall_s_inprocess"] for r in rows)
    total_ray = sum(r["wall_s_ray"] for r in rows)
    n = sum(r["targets"] for r in rows)
    return {
        "benchmark": "ray_scaling", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpu": cpu.describe(), "int8_features": sorted(cpu.int8_features()), "cores": os.cpu_count(),
                    "python": platform.python_version(), "ray": ray.__version__,
                    # Other work on the machine skews both columns: a load above the core count means noise.
                    "loadavg_1m_before": round(load_before[0], 2), "loadavg_1m_after": round(os.getloadavg()[0], 2)},
        "cpu": cpu.cpu_summary(), "smoke": args.smoke,
        "threads": 1, "latency": {"repeats": args.repeats, "rounds": args.rounds},
        "cluster": {"nodes": 1, "num_cpus": 1, "timing_slots": 1, "addresses": addresses,
                    "start_s": round(cluster_start_s, 1)},
        "rows": rows,
        "wall_s_inprocess": round(total_local, 2), "wall_s_ray": round(total_ray, 2),
        "overhead_s_per_target": round((total_ray - total_local) / n, 2),
        "overhead_pct": round(100 * (total_ray - total_local) / total_local, 1),
        "verdicts_agree": all(r["verdicts_agree"] for r in rows),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--models", type=int, default=3, choices=range(1, len(MODELS) + 1))
    parser.add_argument("--repeats", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true", help="one model, few timed calls: checks the script runs "
                        "(a test does), its figures mean nothing")
    args = parser.parse_args()
    if args.smoke:
        args.models, args.repeats, args.rounds = 1, 100, 4
    if args.inside:
        result = inside(args)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        return 0
    if os.geteuid() != 0:
        raise SystemExit("ray_scaling.py needs root for a loopback-only network namespace (ip netns)")
    ns = f"edgecraft-bench-{uuid.uuid4().hex[:6]}"
    ray_bin = str(Path(sys.executable).with_name("ray"))
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        argv = [sys.executable, __file__, "--json", str(args.json.resolve()), "--models", str(args.models),
                "--repeats", str(args.repeats), "--rounds", str(args.rounds), "--inside",
                *(["--smoke"] if args.smoke else [])]
        code = subprocess.run(["ip", "netns", "exec", ns, *argv], check=False).returncode
    finally:
        subprocess.run(["ip", "netns", "exec", ns, ray_bin, "stop", "--force"], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", ns], check=False)
    if code == 0:
        result = json.loads(args.json.read_text())
        print(f"{'plan':<16}{'targets':>8}{'in-process s':>14}{'ray s':>9}{'overhead/target s':>19}{'%':>7}"
              f"{'verdicts':>10}")
        for r in result["rows"]:
            print(f"{r['plan']:<16}{r['targets']:>8}{r['wall_s_inprocess']:>14.1f}{r['wall_s_ray']:>9.1f}"
                  f"{r['overhead_s_per_target']:>19.2f}{r['overhead_pct']:>7.1f}"
                  f"{'agree' if r['verdicts_agree'] else 'DIFFER':>10}")
        print(f"total: in-process {result['wall_s_inprocess']:.1f} s, ray {result['wall_s_ray']:.1f} s, "
              f"{result['overhead_s_per_target']:.2f} s per target ({result['overhead_pct']:.1f}%); cluster start "
              f"{result['cluster']['start_s']:.1f} s (once); cpu: {result['machine']['cpu']}")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
