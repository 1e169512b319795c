"""A Ray worker node inside the emulated aarch64 board: the real-board path (``device: local``), tried under QEMU.

A real board joins a run with ``ray start --address HEAD --resources '{"board:NAME": 1, ...}'`` and measures
``ort-aarch64`` with ``options: {device: local}`` in-process on its CPU (docs/arm-boards.md). This module starts
the same kind of node inside the emulated board, so that path runs on aarch64 code end to end here: Ray's aarch64
raylet and Python workers, edgecraft and ONNX Runtime's aarch64 wheel, all under QEMU user-mode. What it needs,
and why each piece (measured with Ray 2.60 and Debian's qemu-user 7.2):

* **Wheels** (:func:`install_ray_node`): the host's Ray version (Ray refuses a node of another version), the
  aarch64 wheels of edgecraft's dependencies a measuring node imports (pydantic, pluggy, PyYAML, ONNX, numpy,
  protobuf; the host's versions), and this edgecraft as a wheel built from its source checkout (the node must
  run the CLI's code: the measure task checks the version and the plugins' source hashes; one group per source
  hash, so two checkouts' nodes never swap each other's code). Each is a package group of the board
  (:func:`edgecraft.boards.install_board_packages`), offline after the first download.
* **Python patch versions**: the board's Debian Python is 3.11.2, the host's may be 3.11.7. Ray compares the
  full version unless ``RAY_DEFAULT_PYTHON_VERSION_MATCH_LEVEL=minor`` (Ray's own setting), which the node sets.
  A real board whose Python differs from the head's in the patch number needs the same variable.
* **Exec**: without binfmt_misc (containers and CI runners cannot register it) the x86 kernel cannot exec an
  aarch64 program, and Ray's processes start others: ``ray start`` starts the raylet and Python agents, the
  raylet starts Python workers. So the node's ``sys.executable`` is a host shell script that runs the board's
  Python under QEMU, and Ray's raylet path points at another that runs the raylet under QEMU (:data:`_SHIM`:
  Ray's own ``ray start``, with those two paths set before it runs).
* **Start-up time**: the raylet waits 15 s (not configurable in Ray 2.60) for the dashboard agent to write its
  listening port to a file; under QEMU on a busy 2-core host that agent took 37 s to get there and the raylet
  aborted ("Timed out waiting for file .../dashboard_agent_listen_port_NODE"). The node is started with fixed
  agent ports, and the raylet's wrapper writes that port file before the raylet starts (the agent binds that
  same port when it is up; nothing on this path connects to it).

Latency measured on this node is QEMU's: ``ort-aarch64`` with ``device: local`` reads that its process runs
on a kernel of another architecture (:func:`edgecraft.cpu.user_mode_emulation`) and labels it emulated.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from edgecraft.boards import (
    DEFAULT_QEMU_CPU,
    PACKAGES,
    QEMU,
    EmulatedDevice,
    Progress,
    board_packages,
    install_board_packages,
    require_tool,
)
from edgecraft.errors import InputError, RuntimeFailure

RAY_GROUP = "ray"
DEPS_GROUP = "edgecraft-deps"
EDGECRAFT_GROUP = "edgecraft"
#: What a measuring node imports besides Ray and the runtime (edgecraft's core without torch, the CLI and
#: sklearn): pinned to the host's versions, so the node validates and compiles the plan as the CLI did.
NODE_DISTRIBUTIONS = ("pydantic", "pluggy", "pyyaml", "onnx", "numpy", "protobuf")
#: Package groups of backends the node puts on its path when they are installed (ONNX Runtime's aarch64 wheel).
RUNTIME_GROUPS = ("onnxruntime",)
READY_LINE = "This command will now block forever"
RAYLET = f"{PACKAGES}/{RAY_GROUP}/ray/core/src/ray/raylet/raylet"

#: Runs in the board's Python: Ray's own ``ray start``, told to start processes through the host scripts.
_SHIM = '''import os, sys
sys.executable = os.environ["EDGECRAFT_BOARD_PYTHON"]  # what Ray starts agents and workers with
import ray._private.services as services
services.RAYLET_EXECUTABLE = os.environ["EDGECRAFT_BOARD_RAYLET"]
from ray.scripts.scripts import main
sys.argv = ["ray", "start", *sys.argv[1:]]
main()
'''
_PYTHON = '''#!/bin/sh
# The board's Python under QEMU with the Ray node's packages (written by edgecraft.board_ray).
export PYTHONHOME=/usr PYTHONPATH={path} PYTHONDONTWRITEBYTECODE=1 RAY_DEFAULT_PYTHON_VERSION_MATCH_LEVEL=minor
exec {qemu} -cpu "${{EDGECRAFT_QEMU_CPU:-{cpu}}}" -L "{root}" "{root}/usr/bin/python3" "$@"
'''
_RAYLET = '''#!/bin/sh
# Ray's aarch64 raylet under QEMU; first the dashboard agent's port file (see edgecraft.board_ray).
for a in "$@"; do
  case "$a" in --node_id=*) NODE="${{a#--node_id=}}";; --session_dir=*) SESSION="${{a#--session_dir=}}";; esac
done
printf %s {listen_port} > "$SESSION/dashboard_agent_listen_port_$NODE"
exec {qemu} -cpu "${{EDGECRAFT_QEMU_CPU:-{cpu}}}" -L "{root}" "{root}/{raylet}" "$@"
'''


def host_version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError as exc:
        raise InputError(f"a Ray node on the emulated board needs {distribution} on this host too (its version is "
                         "the one installed on the board)", hint="pip install 'edgecraft[ray]'") from exc


def source_root() -> Path:
    """The source checkout this edgecraft runs from (its wheel is built from it for the board)."""
    import edgecraft

    root = Path(edgecraft.__file__).resolve().parents[1]
    if not ((root / "setup.py").is_file() and (root / "pyproject.toml").is_file() and (root / "sdk").is_dir()):
        raise InputError(f"edgecraft runs from {root}, not from a source checkout, so its wheel cannot be built for "
                         "the board's Ray node", hint="run from a checkout (pip install -e .), or install edgecraft "
                         "on the board yourself (docs/arm-boards.md)")
    return root


def _source_files(root: Path) -> list[Path]:
    files = [root / "pyproject.toml", root / "setup.py", root / "README.md"]
    for folder in ("sdk", "plugins", "backends"):
        files += sorted(p for p in (root / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts
                        and p.suffix in (".py", ".json", ".yaml", ".cpp"))
    return files


def _isolation() -> list[str]:
    """Build with this environment's setuptools when it can make wheels (70.1+ has bdist_wheel; older ones need
    the ``wheel`` package), offline; otherwise let pip fetch the build requirements (pyproject.toml's)."""
    import importlib.util

    try:
        major, minor = (int(x) for x in metadata.version("setuptools").split(".")[:2])
    except (metadata.PackageNotFoundError, ValueError):
        return []
    return ["--no-build-isolation"] if (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") else []


def edgecraft_wheel(device: EmulatedDevice) -> Path:
    """This checkout as a wheel, kept in the device's folder by a hash of its sources (built in a copy of the
    tree, so the checkout gets no build folder)."""
    root = source_root()
    digest = hashlib.sha256()
    for path in _source_files(root):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    out = device.home / "edgecraft-wheels" / digest.hexdigest()[:16]
    found = sorted(out.glob("edgecraft-*.whl"))
    if found:
        return found[0]
    with tempfile.TemporaryDirectory(prefix="edgecraft-wheel-") as tmp:
        copy = Path(tmp) / "src"
        for path in _source_files(root):
            (copy / path.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy / path.relative_to(root))
        staging = Path(tmp) / "wheel"
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *_isolation(),
                               "-w", str(staging), str(copy)], capture_output=True, text=True, check=False,
                              stdin=subprocess.DEVNULL)
        wheels = sorted(staging.glob("edgecraft-*.whl"))
        if done.returncode != 0 or not wheels:
            raise RuntimeFailure(f"building edgecraft's wheel for the board failed (exit {done.returncode})\n"
                                 + "\n".join(done.stderr.strip().splitlines()[-10:]),
                                 hint="pip install 'setuptools>=69' wheel (building edgecraft's wheel needs them)")
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(wheels[0], out / f".{wheels[0].name}.{os.getpid()}")
        (out / f".{wheels[0].name}.{os.getpid()}").replace(out / wheels[0].name)
    return out / wheels[0].name


def install_ray_node(device: EmulatedDevice, progress: Progress | None = None) -> list[str]:
    """Install what the node runs (Ray, edgecraft's dependencies, this edgecraft) into the board; return the
    board's import path for the node: those groups and the backends' runtime groups that are installed."""
    deps = [f"{name}=={host_version(name)}" for name in NODE_DISTRIBUTIONS]
    wheel = edgecraft_wheel(device)
    # A group per source hash: a node of another checkout (another worktree's test) keeps its own code.
    path = [install_board_packages(device, f"{EDGECRAFT_GROUP}-{wheel.parent.name}", [str(wheel)], progress=progress),
            install_board_packages(device, DEPS_GROUP, deps, deps=True, progress=progress)]
    path += [p for p in (board_packages(device, group) for group in RUNTIME_GROUPS) if p]
    path.append(install_board_packages(device, RAY_GROUP, [f"ray=={host_version('ray')}"], deps=True,
                                       progress=progress))
    return path


def free_ports(count: int) -> list[int]:
    """``count`` TCP ports free on this host's loopback now (in the caller's network namespace)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class BoardRayNode:
    """A running ``ray start --block`` in the board; :meth:`stop` ends it and every process it started."""

    process: subprocess.Popen[bytes]
    log: Path
    work: Path
    started_s: float

    def log_tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace") if self.log.is_file() else ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM to the node's process group (``ray start --block`` stops its raylet and agents), then SIGKILL
        to what is left of it; Ray's workers exit with their raylet."""
        if self.process.poll() is None:
            for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
                try:
                    os.killpg(self.process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.process.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # anything of the group still alive
        shutil.rmtree(self.work, ignore_errors=True)


def node_command(device: EmulatedDevice, path: list[str], work: Path, address: str, resources: dict[str, float], *,
                 num_cpus: int, node_ip: str | None) -> tuple[list[str], dict[str, str]]:
    """The command line (and environment) that starts the node: host scripts written into ``work``."""
    qemu = require_tool(QEMU, "a Ray node on the emulated board")
    cpu = device.manifest().get("qemu_cpu", DEFAULT_QEMU_CPU)
    metrics, listen, grpc, runtime_env = free_ports(4)
    python, raylet, shim = work / "python-aarch64", work / "raylet-aarch64", work / "ray_start.py"
    python.write_text(_PYTHON.format(path=":".join(path), qemu=qemu, cpu=cpu, root=device.rootfs))
    raylet.write_text(_RAYLET.format(listen_port=listen, qemu=qemu, cpu=cpu, root=device.rootfs, raylet=RAYLET))
    shim.write_text(_SHIM)
    python.chmod(0o755)
    raylet.chmod(0o755)
    argv = [str(python), str(shim), "--address", address, "--num-cpus", str(num_cpus),
            "--resources", json.dumps(resources), "--disable-usage-stats", "--block",
            "--metrics-export-port", str(metrics), "--dashboard-agent-listen-port", str(listen),
            "--dashboard-agent-grpc-port", str(grpc), "--runtime-env-agent-port", str(runtime_env)]
    if node_ip:
        argv += ["--node-ip-address", node_ip]
    env = {**os.environ, "EDGECRAFT_BOARD_PYTHON": str(python), "EDGECRAFT_BOARD_RAYLET": str(raylet),
           "RAY_DEFAULT_PYTHON_VERSION_MATCH_LEVEL": "minor",
           # Python workers start in ~10 s under QEMU on an idle host; Ray's 60 s default is too tight when busy.
           "RAY_worker_register_timeout_seconds": "600"}
    return argv, env


def start_ray_node(address: str, resources: dict[str, float], *, num_cpus: int = 1, node_ip: str | None = None,
                   cache_dir: Path | str | None = None, timeout: float = 600,
                   progress: Progress | None = None) -> BoardRayNode:
    """Start a Ray worker node in the emulated board, joined to the head at ``address`` with ``resources``;
    return once Ray says the node runs. The caller stops it (:meth:`BoardRayNode.stop`)."""
    device = EmulatedDevice.at(cache_dir)
    device.manifest()  # InputError: run `edgecraft device setup arm64-emulated`
    path = install_ray_node(device, progress)
    work = Path(tempfile.mkdtemp(prefix="edgecraft-board-ray-"))
    argv, env = node_command(device, path, work, address, resources, num_cpus=num_cpus, node_ip=node_ip)
    log = work / "ray-start.log"
    started = time.monotonic()
    with open(log, "wb") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                   start_new_session=True)
    node = BoardRayNode(process, log, work, 0.0)
    try:
        while READY_LINE not in log.read_text(errors="replace"):
            if process.poll() is not None:
                raise RuntimeFailure(f"the Ray node in the emulated board exited ({process.returncode}) before it "
                                     f"ran:\n{node.log_tail()}")
            if time.monotonic() - started > timeout:
                raise RuntimeFailure(f"the Ray node in the emulated board did not start in {timeout:g} s:\n"
                                     f"{node.log_tail()}")
            time.sleep(0.5)
    except BaseException:
        node.stop(timeout=10)
        raise
    node.started_s = round(time.monotonic() - started, 1)
    return node


def main(argv: list[str] | None = None) -> int:
    """``python -m edgecraft.board_ray --address HEAD:6379 --resources '{"board:emulated": 1, ...}'``: run a
    node in the emulated board until interrupted."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m edgecraft.board_ray", description=main.__doc__)
    parser.add_argument("--address", required=True, help="the Ray head, HOST:PORT")
    parser.add_argument("--resources", default='{"board:emulated": 1, "edgecraft_timing_slot": 1}',
                        help="the node's custom resources (JSON)")
    parser.add_argument("--num-cpus", type=int, default=1)
    parser.add_argument("--node-ip-address", default=None)
    parser.add_argument("--cache-dir", default=None, help="where the emulated board lives")
    args = parser.parse_args(argv)
    try:
        resources: dict[str, Any] = json.loads(args.resources)
    except ValueError as exc:
        raise SystemExit(f"--resources is not JSON: {exc}") from exc
    node = start_ray_node(args.address, resources, num_cpus=args.num_cpus, node_ip=args.node_ip_address,
                          cache_dir=args.cache_dir, progress=print)
    print(f"Ray node running in the emulated board (started in {node.started_s} s); Ctrl-C stops it")
    try:
        node.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        node.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
