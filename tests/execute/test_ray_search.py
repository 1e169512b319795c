"""`edgecraft search --ray` on a real two-node Ray cluster inside a loopback-only network namespace.

``ray_search_driver.py`` starts the cluster (one CPU and one timing slot per node), runs a tiny search
(4 trials over int8 per-channel and calibration samples) against it and writes what it saw; these tests
check that trials ran there, several in flight, never two timings on one node, and that the front and
the best plan were written as in-process.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

import netns
import pytest
from edgecraft.errors import EXIT_OK

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.search]
DRIVER = Path(__file__).with_name("ray_search_driver.py")
TRIALS = 4


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    why = netns.available()
    if why:
        pytest.skip(f"needs a network namespace: {why}")
    work = tmp_path_factory.mktemp("ray-search")
    result = netns.run_ray_driver(DRIVER, work, "edgecraft-rsearch")
    assert result["search"]["code"] == EXIT_OK, result["search"]["stderr"]
    return result


def _trials(result: dict[str, Any]) -> list[dict[str, Any]]:
    (target,) = result["search"]["doc"]["targets"]
    return target["trials"]


def test_every_trial_was_built_and_measured_on_the_cluster(searched: dict[str, Any]) -> None:
    trials = _trials(searched)
    assert len(trials) == TRIALS and all(t["state"] == "complete" for t in trials), trials
    for t in trials:
        assert t["measured_on"]["node_id"] in searched["node_ids"]
        assert t["built_on"]["node_id"] in searched["node_ids"]
        assert t["measured_on"]["artifacts_via"] == "Ray object store"
    assert "2 timing slot(s); up to 2 trial(s) in flight" in " ".join(searched["search"]["stderr"].split())


def test_trials_were_in_flight_together(searched: dict[str, Any]) -> None:
    spans = sorted(t["wall_clock"] for t in _trials(searched))
    assert any(later[0] < earlier[1] for earlier, later in pairwise(spans)), spans


def test_timing_never_shares_a_node(searched: dict[str, Any]) -> None:
    by_node: dict[str, list[list[float]]] = {}
    for t in _trials(searched):
        by_node.setdefault(t["measured_on"]["node_id"], []).append(t["measured_on"]["timing_slot_held"])
    for spans in by_node.values():
        spans.sort()
        assert all(a[1] <= b[0] for a, b in pairwise(spans)), spans


def test_front_and_best_plan_are_written(searched: dict[str, Any]) -> None:
    search = searched["search"]
    (target,) = search["doc"]["targets"]
    assert target["best"] is not None and target["front"]
    assert search["best_plan"] and {"search.json", "trials.csv", "search.db"} <= set(search["files"])
    assert target["trials_run_now"] == TRIALS
