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
