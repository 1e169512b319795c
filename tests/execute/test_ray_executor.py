"""`edgecraft run --ray` on a real local multi-node Ray cluster, inside a loopback-only network namespace.

One cluster (a head with ``zone:a``, node b with ``zone:b``, later node c with ``zone:b`` too, each with
one ``edgecraft_timing_slot``) serves every scenario; ``ray_cluster_driver.py`` runs them under
``ip netns exec`` and writes what it saw, these tests check it:
placement by custom resources, one timing at a time per node, the report's node fields, a node killed
while it times a target (the target moves to the other eligible node, the report lists the retry), and
a placement no node offers (exit 3 after the plan's timeout, naming it).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import netns
import pytest
from edgecraft.errors import EXIT_OK, EXIT_PLUGIN_FAILURE

pytestmark = [pytest.mark.slow, pytest.mark.ray]
DRIVER = Path(__file__).with_name("ray_cluster_driver.py")


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    why = netns.available()
    if why:
        pytest.skip(f"needs a network namespace: {why}")
    work = tmp_path_factory.mktemp("ray-cluster")
    return netns.run_ray_driver(DRIVER, work, "edgecraft-ray")


def _loopback(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback


def test_every_node_address_is_loopback(cluster_run: dict[str, Any]) -> None:
    assert cluster_run["address"].startswith("127.0.0.1:")
    addresses = [n["address"] for n in cluster_run["nodes"]] + [n["address"] for n in cluster_run["nodes_after"]]
    assert len(cluster_run["nodes"]) == 2 and all(_loopback(a) for a in addresses), addresses
    report = cluster_run["placed"]["report"]
    assert all(_loopback(n["address"]) for n in report["executor"]["nodes"])


def test_targets_run_where_their_placement_says(cluster_run: dict[str, Any]) -> None:
    placed = cluster_run["placed"]
    assert placed["code"] == EXIT_OK, placed["stderr"]
    ids = cluster_run["node_ids"]
    targets = {t["target"]: t for t in placed["report"]["targets"]}
    assert targets["on-a"]["measured_on"]["node_id"] == ids["a"]
    assert targets["on-b-1"]["measured_on"]["node_id"] == ids["b"]
    assert targets["on-b-2"]["measured_on"]["node_id"] == ids["b"]
    for target in targets.values():
        assert target["built_on"]["node_id"] in (ids["a"], ids["b"])
        assert target["measured_on"]["artifacts_via"] == "Ray object store"
        assert target["status"] == "pass" and len(target["contracts"]) == 2
        assert target["retries"] == []
        # The artifact path is where it lives: the building node's cache, not the measuring node's temp copy.
        assert "node-cache" in target["artifact"]
    assert placed["report"]["executor"]["kind"] == "ray"


def test_timing_never_shares_a_node(cluster_run: dict[str, Any]) -> None:
    """Node b has two CPUs: only its single timing slot keeps the two timing tasks from overlapping."""
    targets = {t["target"]: t for t in cluster_run["placed"]["report"]["targets"]}
    (s1, e1), (s2, e2) = (targets[n]["measured_on"]["timing_slot_held"] for n in ("on-b-1", "on-b-2"))
    assert e1 - s1 > 0.1 and e2 - s2 > 0.1  # long enough that running together would have overlapped
    assert e1 <= s2 or e2 <= s1, ((s1, e1), (s2, e2))


def test_a_lost_node_sends_the_target_to_another(cluster_run: dict[str, Any]) -> None:
    lost = cluster_run["lost"]
    assert lost["killed"] in ("b", "c"), lost["stderr"]
    assert lost["code"] == EXIT_OK, lost["stderr"]
    (target,) = lost["report"]["targets"]
    (retry,) = target["retries"]
    assert retry["stage"] == "measurement" and retry["error"] == "NodeDiedError"
    assert retry["node"]["node_id"] == lost["killed_id"]
    survivor = {"b": "c", "c": "b"}[lost["killed"]]
    assert target["measured_on"]["node_id"] == cluster_run["node_ids"][survivor]
    assert target["built_on"]["node_id"] == cluster_run["node_ids"]["a"]  # build_resources: zone:a
    assert "sending it again" in " ".join(lost["stderr"].split())  # the progress line (wrapped by rich)


def test_unsatisfiable_placement_fails_after_the_timeout(cluster_run: dict[str, Any]) -> None:
    failed = cluster_run["unsatisfiable"]
    assert failed["code"] == EXIT_PLUGIN_FAILURE
    stderr = " ".join(failed["stderr"].split())
    assert '"arch:riscv64": 1' in stderr and "no node of the Ray cluster" in stderr and "waited 3 s" in stderr
    assert failed["seconds"] < 120
    # The other target still ran on its node; the report lists it beside the one that errored (issue 26).
    report = failed["report"]
    assert report is not None and report["exit_code"] == EXIT_PLUGIN_FAILURE
    assert [t["target"] for t in report["targets"]] == ["on-a"]
    [errored] = report["errored"]
    assert errored["target"] == "riscv" and "no node of the Ray cluster" in errored["message"]
