"""``edgecraft.board_ray``'s pieces without starting Ray (the node itself runs in tests/execute/test_ray_board.py).

The host scripts are what make Ray's processes start under QEMU: the Python launcher (the node's
``sys.executable``) and the raylet's wrapper, which must write the dashboard agent's port file (the raylet waits
only 15 s for it; the emulated agent takes longer) with the very port the node gives the agent.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from edgecraft.errors import InputError

needs_qemu = pytest.mark.skipif(shutil.which("qemu-aarch64-static") is None, reason="needs qemu-user-static")


def _device(tmp_path: Path) -> Any:
    from edgecraft.boards import EmulatedDevice

    device = EmulatedDevice.at(tmp_path / "devices")
    device.launcher.parent.mkdir(parents=True)
    device.launcher.write_text("#!/bin/sh\n")
    device.manifest_path.write_text(json.dumps({"python": "3.11.2", "qemu_cpu": "cortex-a76"}))
    return device


@needs_qemu
def test_the_raylet_wrapper_writes_the_agent_port_the_node_is_given(tmp_path: Path) -> None:
    from edgecraft.board_ray import node_command

    work = tmp_path / "work"
    work.mkdir()
    argv, env = node_command(_device(tmp_path), ["/opt/edgecraft/packages/ray", "/opt/x"], work, "127.0.0.1:6379",
                             {"board:emulated": 1}, num_cpus=1, node_ip="127.0.0.1")
    listen = argv[argv.index("--dashboard-agent-listen-port") + 1]
    assert json.loads(argv[argv.index("--resources") + 1]) == {"board:emulated": 1}
    assert env["RAY_DEFAULT_PYTHON_VERSION_MATCH_LEVEL"] == "minor"
    assert Path(env["EDGECRAFT_BOARD_PYTHON"]) == Path(argv[0]) == work / "python-aarch64"
    launcher = (work / "python-aarch64").read_text()
    assert "PYTHONPATH=/opt/edgecraft/packages/ray:/opt/x" in launcher and "-cpu" in launcher
    session = tmp_path / "session"
    session.mkdir()
    # No raylet in this fake board: QEMU fails after the wrapper wrote the port file, which is what is checked.
    subprocess.run(["sh", env["EDGECRAFT_BOARD_RAYLET"], "--node_id=abc123", f"--session_dir={session}"],
                   capture_output=True, check=False, timeout=60)
    assert (session / "dashboard_agent_listen_port_abc123").read_text() == listen


def test_bad_resources_are_refused_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    from edgecraft.board_ray import main

    with pytest.raises(SystemExit, match="--resources is not JSON"):
        main(["--address", "127.0.0.1:6379", "--resources", "{board: 1}"])


def test_the_node_needs_a_set_up_board(tmp_path: Path) -> None:
    from edgecraft.board_ray import start_ray_node

    with pytest.raises(InputError, match="not set up"):
        start_ray_node("127.0.0.1:6379", {"board:emulated": 1}, cache_dir=tmp_path / "nothing-here")


def test_free_ports_are_distinct() -> None:
    from edgecraft.board_ray import free_ports

    ports = free_ports(4)
    assert len(set(ports)) == 4 and all(1024 < p < 65536 for p in ports)
