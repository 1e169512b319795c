"""A throw-away network namespace with only loopback up, for tests that start servers (Ray, TVM RPC).

Ray 2.60 advertises the machine's network address even with ``--node-ip-address=127.0.0.1``; inside a
namespace whose only interface is ``lo`` it has nothing but 127.0.0.1 to advertise, so a test cluster can
never be reached from (or reach) the network. Needs root (``ip netns add``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any


def available() -> str | None:
    """None when network namespaces can be made here, else why not."""
    if shutil.which("ip") is None:
        return "the `ip` tool (iproute2) is missing"
    if os.geteuid() != 0:
        return "network namespaces need root"
    return None


def _pids(name: str) -> list[int]:
    done = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, check=False)
    return [int(p) for p in done.stdout.split()]


@contextmanager
def loopback_namespace(prefix: str = "edgecraft-test", *, ray: str | None = None) -> Iterator[str]:
    """Yield the name of a new namespace with ``lo`` up; on exit stop Ray in it (``ray``: the ray
    executable), end every process still inside (all of them started by the test), delete it."""
    name = f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        if ray is not None:
            subprocess.run(["ip", "netns", "exec", name, ray, "stop", "--force"], capture_output=True,
                           check=False, timeout=120)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = _pids(name)
            for pid in pids:
                with suppress(ProcessLookupError):
                    os.kill(pid, sig)
            if pids:
                time.sleep(1.0)
        subprocess.run(["ip", "netns", "del", name], check=False)


def command(name: str, *argv: str) -> list[str]:
    """``argv`` run inside namespace ``name``."""
    return ["ip", "netns", "exec", name, *argv]


def run_ray_driver(driver: Path, work: Path, prefix: str) -> dict[str, Any]:
    """Run a test driver script on a Ray cluster inside a fresh loopback-only namespace; its JSON result.

    The driver gets ``WORK OUT`` as arguments, starts its cluster with the ``ray`` next to this Python,
    and writes ``OUT``; the namespace (and every Ray process in it) is gone when this returns.
    """
    import json
    import sys

    out = work / "out.json"
    ray_bin = str(Path(sys.executable).with_name("ray"))
    with loopback_namespace(prefix, ray=ray_bin) as ns:
        done = subprocess.run(command(ns, sys.executable, str(driver), str(work), str(out)),
                              capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0 and out.is_file(), done.stderr[-3000:]
    return dict(json.loads(out.read_text()))
