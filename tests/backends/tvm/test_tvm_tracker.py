"""A device farm for real: TVM's own RPC tracker and two emulated boards (`edgecraft device serve`), on loopback.

Checks that `edgecraft device status` lists the queue and boards, that two plans at once are served by
both boards, that a key no board serves times out with exit 3 naming it, that an emulated board is never
taken for a real one, and that a board killed mid-run fails the run clearly (exit 3 naming the board).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from edgecraft.errors import EXIT_OK, EXIT_PLUGIN_FAILURE

pytestmark = [pytest.mark.slow, pytest.mark.aarch64]

KEY = "arm64-farm"
NET = '''
import torch
from torch import nn


def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 10)).eval()
'''


def _free_port() -> int:
    from edgecraft.backends.tvm.rpc_server import free_port

    return free_port()


def _spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as handle:
        return subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)


def _edgecraft(*args: str) -> list[str]:
    return [sys.executable, "-m", "edgecraft.cli", *args]


def _status(tracker: str) -> dict[str, Any]:
    done = subprocess.run(_edgecraft("device", "status", "--tracker", tracker, "--json"), capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _boards(tracker: str, key: str) -> int:
    return sum(1 for b in _status(tracker)["boards"] if b["key"] == f"server:{key}")


def _serve(tracker: str, key: str, name: str, folder: Path) -> subprocess.Popen[bytes]:
    return _spawn(_edgecraft("device", "serve", "arm64-emulated", "--tracker", tracker, "--key", key, "--name", name,
                             "--log", str(folder / f"{name}.rpc.log")), folder / f"{name}.out")


def _wait_boards(tracker: str, key: str, count: int, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while _boards(tracker, key) < count:
        assert time.monotonic() < deadline, f"{count} boards with key {key} did not register in {timeout} s"
        time.sleep(1)


@pytest.fixture(scope="module")
def farm(emulated_device, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("farm")
    port = _free_port()
    tracker = f"127.0.0.1:{port}"
    procs = [_spawn([sys.executable, "-m", "tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port", str(port),
                     "--port-end", str(port + 1)], folder / "tracker.log")]
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(_edgecraft("device", "status", "--tracker", tracker), capture_output=True,
                             check=False).returncode != 0:
            assert procs[0].poll() is None, (folder / "tracker.log").read_text()
            assert time.monotonic() < deadline, "the tracker did not start"
            time.sleep(0.5)
        procs += [_serve(tracker, KEY, name, folder) for name in ("board-1", "board-2")]
        _wait_boards(tracker, KEY, 2)
        yield {"tracker": tracker, "port": port, "folder": folder, "procs": procs}
    finally:
        for proc in reversed(procs):
            _stop(proc)


def _plan(folder: Path, name: str, options: dict[str, Any], *, repeats: int = 10, rounds: int = 2,
          contract: dict[str, Any] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "net.py").write_text(NET)
    plan = {
        "schema": "edgecraft.plan/v1", "name": name,
        "model": {"kind": "torch", "factory": "net.py:build", "input_shape": [1, 1, 8, 8],
                  "exporter": "torchscript", "opset": 17},
        "data": {"digits": {"kind": "digits", "image_size": 8, "max_samples": 32}},
        "evaluation": {"dataset": "digits", "metrics": ["agreement"], "batch_size": 16},
        "latency": {"warmup": 2, "repeats": repeats, "rounds": rounds, "threads": 1},
        "targets": [{"target": "tvm-aarch64", "name": "farm", "options": options}],
        "contracts": [{"kind": "accuracy", "metric": "agreement", "max_drop": 0.01},
                      contract or {"kind": "latency", "max_ms": 1000, "allow_emulated": True}],
    }
    path = folder / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def _options(farm: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"device": "tracker", "tracker_host": "127.0.0.1", "tracker_port": farm["port"], "tracker_key": KEY,
            "board_emulated": True, "tracker_timeout": 120, **extra}


def _run(plan: Path, cache: Path, report: Path | None = None) -> subprocess.Popen[str]:
    args = ["run", str(plan), "-q", "--cache-dir", str(cache)] + (["--report-json", str(report)] if report else [])
    return subprocess.Popen(_edgecraft(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_status_lists_the_queue_and_both_boards(farm: dict[str, Any]) -> None:
    status = _status(farm["tracker"])
    assert status["queue"][KEY]["total"] == 2 and status["queue"][KEY]["free"] == 2
    assert [b["addr"][0] for b in status["boards"]] == ["127.0.0.1", "127.0.0.1"]


def test_two_plans_at_once_are_served_by_both_boards(farm: dict[str, Any], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    # Build once first, so both runs then hold their board for their whole measurement at the same time.
    warm = _run(_plan(tmp_path / "warm", "warm", _options(farm)), cache)
    assert warm.wait(timeout=600) == EXIT_OK, warm.communicate()[1]
    runs = [(_run(_plan(tmp_path / f"p{i}", f"farm-{i}", _options(farm), repeats=3000), cache,
                  tmp_path / f"r{i}.json"), tmp_path / f"r{i}.json") for i in (1, 2)]
    boards = set()
    for proc, report in runs:
        _, stderr = proc.communicate(timeout=600)
        assert proc.returncode == EXIT_OK, stderr
        (target,) = json.loads(report.read_text())["targets"]
        assert target["emulated"] is True and target["contracts"][1]["emulated"] is True
        assert target["device"]["device"] == f"tracker://{farm['tracker']}/{KEY}"
        boards.add(target["device"]["board"])
    assert boards == {"board-1", "board-2"}
    for name in boards:
        assert "connected from" in (farm["folder"] / f"{name}.rpc.log").read_text()


def test_a_key_no_board_serves_times_out_naming_it(farm: dict[str, Any], tmp_path: Path) -> None:
    plan = _plan(tmp_path, "nobody", _options(farm, tracker_key="riscv-nobody", tracker_timeout=3))
    started = time.monotonic()
    proc = _run(plan, tmp_path / "cache")
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == EXIT_PLUGIN_FAILURE
    assert "no free board with key 'riscv-nobody'" in stderr and "within 3 s" in stderr
    assert time.monotonic() - started < 240


def test_an_emulated_board_is_never_taken_for_a_real_one(farm: dict[str, Any], tmp_path: Path) -> None:
    plan = _plan(tmp_path, "honest", _options(farm, board_emulated=False),
                 contract={"kind": "latency", "max_ms": 1000})
    proc = _run(plan, tmp_path / "cache")
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == EXIT_PLUGIN_FAILURE
    assert "is an emulated board (board-" in stderr and "board_emulated: true" in stderr


def test_a_board_killed_mid_run_fails_clearly(farm: dict[str, Any], tmp_path: Path) -> None:
    key = "arm64-doomed"
    board = _serve(farm["tracker"], key, "doomed", farm["folder"])
    try:
        _wait_boards(farm["tracker"], key, 1)
        log = farm["folder"] / "doomed.rpc.log"
        proc = _run(_plan(tmp_path, "doomed", _options(farm, tracker_key=key), repeats=400000,
                           rounds=5000), tmp_path / "cache")  # timing far longer than the 5 s before the kill
        deadline = time.monotonic() + 300
        while "load_module" not in log.read_text():  # the run has the board and is loading or timing
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline
            time.sleep(0.5)
        time.sleep(5)
        _stop(board, signal.SIGKILL)  # the board dies (its watchdog ends the emulated server with it)
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == EXIT_PLUGIN_FAILURE, stderr
        assert "the device doomed" in stderr and "failed while" in stderr, stderr
    finally:
        _stop(board, signal.SIGKILL)


def test_tuning_runs_candidates_on_the_boards(farm: dict[str, Any], tmp_path: Path) -> None:
    """MetaSchedule tuning through the tracker: candidates cross-linked here and timed on an emulated board;
    the tuned library runs there and matches onnxruntime, and its timings are labelled, never a verdict."""
    logs = tmp_path / "tuning-logs"
    plan = _plan(tmp_path, "tuned", _options(farm, tuning={"trials": 2, "log_dir": str(logs)}),
                 contract={"kind": "accuracy", "metric": "agreement", "max_drop": 0.0})
    report = tmp_path / "report.json"
    proc = _run(plan, tmp_path / "cache", report)
    _, stderr = proc.communicate(timeout=1500)
    assert proc.returncode == EXIT_OK, stderr[-3000:]
    (target,) = json.loads(report.read_text())["targets"]
    assert target["device"]["tuned"] is True and target["emulated"] is True
    assert target["device"]["host_check_max_abs_diff"] < 1e-4  # the tuned library vs onnxruntime on the host
    assert target["compressed"]["metrics"]["agreement"] == 1.0
    assert all(v["kind"] != "latency" for v in target["contracts"])
    (log_dir,) = logs.iterdir()
    done = json.loads((log_dir / "done").read_text())
    assert done["boards"] == f"{KEY} (emulated)" and done["trials"] == 2
    timed = [line for f in (log_dir / "logs").glob("*task_*.log") for line in f.read_text().splitlines()
             if "Trial #" in line and "Time:" in line]
    assert timed, "no candidate was timed on a board"
    meta = next((tmp_path / "cache").rglob("tvm_model.json"))
    notes = " ".join(json.loads(meta.read_text())["notes"])
    assert "timed on boards with key" in notes and "emulated boards" in notes
