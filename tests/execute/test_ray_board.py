"""The real-board path, run on aarch64 code: a Ray worker node *inside the emulated board* (Ray's aarch64 raylet
and workers, edgecraft and ONNX Runtime's aarch64 wheel, under QEMU user-mode) joined over loopback to a head on
this host, and ``edgecraft run --ray`` measuring ``ort-aarch64`` with ``device: local`` on that node.

The node's packages are installed first, here (the namespace has no network; later runs are offline), then
``ray_board_driver.py`` runs the cluster in a loopback-only network namespace and writes what it saw; every Ray
process of the namespace is ended when it returns (the driver stops the node and the head; the namespace's
clean-up kills whatever is left). These tests check the report: measured on the board's node (aarch64), by ONNX
Runtime's ARM integer kernels, with latency labelled emulated (that node refuses a latency contract without
``allow_emulated``: tests/execute/test_measuring_node.py), and that stopping the node leaves nothing running.
"""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path
from typing import Any

import netns
import pytest
from edgecraft.errors import EXIT_OK

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.aarch64]
DRIVER = Path(__file__).with_name("ray_board_driver.py")


@pytest.fixture(scope="module")
def board_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    why = netns.available()
    if why:
        pytest.skip(f"needs a network namespace: {why}")
    from edgecraft.board_ray import install_ray_node
    from edgecraft.boards import EmulatedDevice

    started = time.monotonic()
    install_ray_node(EmulatedDevice.at())  # downloads once (host network), offline afterwards
    installed = time.monotonic() - started
    work = tmp_path_factory.mktemp("ray-board")
    result = netns.run_ray_driver(DRIVER, work, "edgecraft-board")
    result["install_seconds"] = round(installed, 1)
    result["total_seconds"] = round(time.monotonic() - started, 1)
    print(f"\nray board: install {result['install_seconds']} s, node start {result.get('node_start_seconds')} s, "
          f"run {result['run']['seconds']} s, node stop {result.get('node_stop_seconds')} s, "
          f"total {result['total_seconds']} s")
    return result


def _board_node(run: dict[str, Any]) -> dict[str, Any]:
    nodes = [n for n in run["nodes"] if "board:emulated" in n["resources"]]
    assert len(nodes) == 1, run["nodes"]
    return nodes[0]


def _target(run: dict[str, Any]) -> dict[str, Any]:
    assert run["run"]["code"] == EXIT_OK, run["run"]["stderr"] + run.get("node_log_tail", "")
    report = run["run"]["report"]
    assert report is not None
    (target,) = report["targets"]
    return dict(target)


def test_the_board_node_joins_over_loopback(board_run: dict[str, Any]) -> None:
    node = _board_node(board_run)
    assert node["alive"] and node["resources"]["edgecraft_timing_slot"] == 1
    assert ipaddress.ip_address(node["address"]).is_loopback
    assert board_run["host_machine"] not in ("aarch64", "arm64")  # the head (and the CLI) on this x86 host


def test_measured_on_the_board_node_by_arm_kernels(board_run: dict[str, Any]) -> None:
    target = _target(board_run)
    node = _board_node(board_run)
    assert target["measured_on"]["node_id"] == node["id"]
    assert target["built_on"]["node_id"] != node["id"]  # build_resources kept the build on the host
    runtime = target["compressed"]["runtime"]
    assert runtime["machine"] == "aarch64" and runtime["runtime"].startswith("onnxruntime 1.27")
    assert {"QLinearConv"} <= set(runtime["integer_ops"]), runtime["executed_ops"]
    assert runtime["cpu_features"]["asimddp"] is True  # the emulated Cortex-A76's dot product, read on the node
    # The node differs from the CLI only in build tools; edgecraft and every plugin are the CLI's own code.
    differing = target["measured_on"]["versions_differing_from_cli"]
    assert differing["runtime:onnxruntime"]["node"] != differing["runtime:onnxruntime"]["cli"]
    assert not [k for k in differing if k == "edgecraft" or k.startswith("plugin:")]


def test_latency_is_labelled_emulated_not_a_board(board_run: dict[str, Any]) -> None:
    target = _target(board_run)
    runtime = target["compressed"]["runtime"]
    assert target["emulated"] is True
    assert runtime["emulated"] is True and "x86_64 kernel" in runtime["emulator"]
    latency = [v for v in target["contracts"] if v["kind"] == "latency"]
    assert latency and all(v["emulated"] and "emulated device" in v["detail"] for v in latency)
    accuracy = [v for v in target["contracts"] if v["kind"] == "accuracy"]
    assert accuracy and all(v["status"] == "pass" for v in accuracy), accuracy  # int8 on ARM kernels, judged


def test_stopping_the_node_leaves_no_emulated_process(board_run: dict[str, Any]) -> None:
    """The node's stop (SIGTERM to ``ray start --block``'s group, then SIGKILL) ends its raylet, agents and
    workers by itself; the namespace's clean-up is only the second line."""
    assert board_run["board_processes_after_stop"] == [], board_run["board_processes_after_stop"]
