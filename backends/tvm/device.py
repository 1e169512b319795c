"""The emulated aarch64 device: a Debian arm64 userland run by QEMU user-mode, with TVM's runtime in it.

``setup_emulated_device`` prepares it once and caches it (``edgecraft device setup arm64-emulated``);
:mod:`edgecraft.backends.tvm.rpc_server` starts TVM's RPC server in it for each run.

How it is built, and why this way:

* ``debootstrap --foreign --arch=arm64 --variant=minbase --include=python3,libgomp1,libstdc++6``
  downloads and verifies (Debian's keyring) the arm64 packages. Only the *first* stage runs: the second
  stage would execute arm64 maintainer scripts inside a chroot, which needs binfmt_misc registered for
  QEMU, which containers and CI runners usually cannot do. Instead every downloaded package is unpacked
  with ``dpkg-deb -x``; the device needs files (an arm64 ``python3.11``, its stdlib, libc, libstdc++,
  libgomp), not a configured system. ~20 s instead of the ~3 min of a full debootstrap.
* The aarch64 wheels of apache-tvm (with its ``rpc`` extra: tornado, psutil, cloudpickle), apache-tvm-ffi
  and numpy are downloaded by the host's pip and installed offline by the host's pip with
  ``--target``/``--platform`` into ``/opt/edgecraft/site-packages`` of the root. No emulated pip run,
  no chroot; the versions match the host's TVM so both ends of the RPC speak the same protocol.
* QEMU runs the arm64 Python as ``qemu-aarch64-static -L ROOT ROOT/usr/bin/python3.11`` (``-L`` makes
  the arm64 loader and libraries resolve inside ROOT). A host shell script, ``bin/python-aarch64``,
  wraps that command so TVM's RPC server can re-launch "itself" (it spawns ``sys.executable`` for its
  worker process, and without binfmt an arm64 binary cannot be exec'ed directly).

Everything is built in a temporary sibling directory and renamed into place, so an interrupted setup
leaves no half-made device behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecraft.backends.tvm.toolchain import QEMU, apt_hint, dist_version, require_tool, tool_version
from edgecraft.errors import InputError, RuntimeFailure

DEVICE_NAME = "arm64-emulated"
DEFAULT_SUITE = "bookworm"  # Debian 12: Python 3.11, glibc 2.36 (the aarch64 wheels need manylinux_2_28)
DEFAULT_MIRROR = "http://deb.debian.org/debian"
ROOT_PACKAGES = ("python3", "libgomp1", "libstdc++6")
SITE_PACKAGES = "opt/edgecraft/site-packages"
MANIFEST = "device.json"
LAUNCHER = "bin/python-aarch64"
#: Wheel platform tags the aarch64 wheels on the package index use.
WHEEL_PLATFORMS = ("manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64")
#: QEMU CPU model: "max" enables every feature QEMU emulates (NEON, dot product, SVE, ...).
DEFAULT_QEMU_CPU = "max"

_LAUNCHER_SCRIPT = """#!/bin/sh
# Runs the device's arm64 Python under QEMU user-mode (written by edgecraft; see device.py).
DEV="$(cd "$(dirname "$0")/.." && pwd)"
export PYTHONHOME=/usr
export PYTHONPATH=/{site}
export PYTHONDONTWRITEBYTECODE=1
export TVM_USE_RUNTIME_LIB=1
exec {qemu} -cpu "${{EDGECRAFT_QEMU_CPU:-{cpu}}}" -L "$DEV/rootfs" "$DEV/rootfs/usr/bin/python3" "$@"
"""


def default_cache_dir() -> Path:
    """``$EDGECRAFT_DEVICE_CACHE`` or ``~/.cache/edgecraft/devices``."""
    env = os.environ.get("EDGECRAFT_DEVICE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "edgecraft" / "devices"


@dataclass(frozen=True)
class EmulatedDevice:
    """A prepared (or to-be-prepared) emulated device under ``cache_dir / arm64-emulated``."""

    home: Path

    @classmethod
    def at(cls, cache_dir: Path | str | None = None) -> EmulatedDevice:
        base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        return cls(base / DEVICE_NAME)

    @property
    def rootfs(self) -> Path:
        return self.home / "rootfs"

    @property
    def launcher(self) -> Path:
        return self.home / LAUNCHER

    @property
    def manifest_path(self) -> Path:
        return self.home / MANIFEST

    def is_ready(self) -> bool:
        return self.manifest_path.is_file() and self.launcher.is_file()

    def manifest(self) -> dict[str, Any]:
        if not self.is_ready():
            raise InputError(f"the emulated aarch64 device is not set up in {self.home}",
                             hint=f"run `edgecraft device setup {DEVICE_NAME}` (cache dir: "
                             f"{self.home.parent}; ~1 min, downloads ~400 MB once)")
        return json.loads(self.manifest_path.read_text())

    def identity(self) -> dict[str, Any]:
        """What a report says about this device."""
        m = self.manifest()
        return {
            "device": DEVICE_NAME,
            "emulated": True,
            "emulator": m.get("qemu", QEMU),
            "qemu_cpu": os.environ.get("EDGECRAFT_QEMU_CPU", m.get("qemu_cpu", DEFAULT_QEMU_CPU)),
            "machine": m.get("machine"),
            "userland": f"Debian {m.get('suite')} arm64 (python {m.get('python')})",
            "tvm_runtime": m.get("tvm"),
            "note": "latency measured under QEMU emulation says nothing about a real ARM core",
        }

    def python(self, *args: str) -> list[str]:
        """Command line running the device's arm64 Python with ``args``."""
        return [str(self.launcher), *args]


Progress = Callable[[str], None]


def setup_emulated_device(
    cache_dir: Path | str | None = None,
    *,
    suite: str = DEFAULT_SUITE,
    mirror: str | None = None,
    wheel_dir: Path | str | None = None,
    tvm_version: str | None = None,
    tvm_ffi_version: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> EmulatedDevice:
    """Prepare the emulated aarch64 device under ``cache_dir`` (default :func:`default_cache_dir`).

    Idempotent: a ready device with the same TVM versions is returned at once unless ``force``.
    ``mirror`` defaults to ``$EDGECRAFT_DEBIAN_MIRROR`` or deb.debian.org. ``wheel_dir`` holding the
    aarch64 wheels makes the Python part offline; otherwise they are downloaded (and kept) in
    ``cache_dir/wheels``. Versions default to the host's apache-tvm and apache-tvm-ffi.
    """
    say = progress or (lambda msg: None)
    device = EmulatedDevice.at(cache_dir)
    tvm_version = tvm_version or _host_version("apache-tvm")
    tvm_ffi_version = tvm_ffi_version or _host_version("apache-tvm-ffi")
    mirror = mirror or os.environ.get("EDGECRAFT_DEBIAN_MIRROR", DEFAULT_MIRROR)

    if device.is_ready() and not force:
        m = device.manifest()
        if (m.get("tvm"), m.get("tvm_ffi")) == (tvm_version, tvm_ffi_version):
            say(f"{DEVICE_NAME}: ready in {device.home}")
            return device
        say(f"{DEVICE_NAME}: TVM {m.get('tvm')}/{m.get('tvm_ffi')} in the device, host wants "
            f"{tvm_version}/{tvm_ffi_version}: rebuilding")

    purpose = f"setting up the {DEVICE_NAME} device"
    debootstrap = require_tool("debootstrap", purpose)
    dpkg_deb = require_tool("dpkg-deb", purpose)
    qemu = require_tool(QEMU, purpose)
    if os.geteuid() != 0:
        raise InputError(f"{purpose} needs root: debootstrap creates device nodes and sets file owners",
                         hint=f"run it as root once (sudo edgecraft device setup {DEVICE_NAME}); "
                         "runs afterwards need no root")

    started = time.monotonic()
    device.home.parent.mkdir(parents=True, exist_ok=True)
    wheels = Path(wheel_dir) if wheel_dir is not None else device.home.parent / "wheels"
    staging = Path(tempfile.mkdtemp(prefix=f".{DEVICE_NAME}.", dir=device.home.parent))
    try:
        rootfs = staging / "rootfs"
        say(f"{DEVICE_NAME}: debootstrap (first stage) Debian {suite} arm64 from {mirror}")
        _run([debootstrap, "--foreign", "--arch=arm64", "--variant=minbase",
              f"--include={','.join(ROOT_PACKAGES)}", suite, str(rootfs), mirror],
             "debootstrap of the arm64 root", hint="check the Debian mirror (--mirror or "
             "$EDGECRAFT_DEBIAN_MIRROR) and that the host can reach it")
        archives = rootfs / "var" / "cache" / "apt" / "archives"
        debs = sorted(archives.glob("*.deb"))
        say(f"{DEVICE_NAME}: unpacking {len(debs)} arm64 packages")
        for deb in debs:
            _run([dpkg_deb, "-x", str(deb), str(rootfs)], f"unpacking {deb.name}")
            deb.unlink()
        python_name = _root_python(rootfs)

        py_version = python_name.removeprefix("python")
        requirements = [f"apache-tvm[rpc]=={tvm_version}", f"apache-tvm-ffi=={tvm_ffi_version}"]
        platform_args = [f"--python-version={py_version}", "--implementation=cp",
                         f"--abi=cp{py_version.replace('.', '')}", "--only-binary=:all:"]
        for plat in WHEEL_PLATFORMS:
            platform_args.append(f"--platform={plat}")
        if wheel_dir is None:
            say(f"{DEVICE_NAME}: downloading aarch64 wheels ({', '.join(requirements)}) into {wheels}")
            wheels.mkdir(parents=True, exist_ok=True)
            _run([sys.executable, "-m", "pip", "download", "-q", "-d", str(wheels), *platform_args,
                  *requirements], "downloading the aarch64 wheels",
                 hint="pass wheel_dir (--wheel-dir) with the aarch64 wheels to set up offline")
        say(f"{DEVICE_NAME}: installing the wheels offline into /{SITE_PACKAGES}")
        _run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(wheels),
              "--target", str(rootfs / SITE_PACKAGES), *platform_args, *requirements],
             "installing the aarch64 wheels into the device")

        launcher = staging / LAUNCHER
        launcher.parent.mkdir(parents=True)
        launcher.write_text(_LAUNCHER_SCRIPT.format(site=SITE_PACKAGES, qemu=qemu, cpu=DEFAULT_QEMU_CPU))
        launcher.chmod(0o755)

        say(f"{DEVICE_NAME}: checking that TVM's runtime imports on the emulated CPU")
        probe = _run([str(launcher), "-c", "import json, platform, tvm, numpy; print(json.dumps("
                      "{'machine': platform.machine(), 'python': platform.python_version(), "
                      "'tvm': tvm.__version__, 'numpy': numpy.__version__}))"],
                     "the device's smoke test (import tvm under QEMU)")
        facts = json.loads(probe.strip().splitlines()[-1])
        if facts["machine"] != "aarch64":
            raise RuntimeFailure(f"the emulated device reports machine {facts['machine']!r}, not aarch64")
        manifest = {
            "name": DEVICE_NAME, "suite": suite, "mirror": mirror, "python": facts["python"],
            "machine": facts["machine"], "tvm": tvm_version, "tvm_ffi": tvm_ffi_version,
            "numpy": facts["numpy"], "qemu": tool_version(QEMU), "qemu_cpu": DEFAULT_QEMU_CPU,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "setup_seconds": round(time.monotonic() - started, 1),
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")

        old = None
        if device.home.exists():
            old = device.home.with_name(f".{DEVICE_NAME}.old-{os.getpid()}")
            device.home.rename(old)
        staging.rename(device.home)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    say(f"{DEVICE_NAME}: ready in {device.home} ({time.monotonic() - started:.0f} s)")
    return device


def _host_version(dist: str) -> str:
    version = dist_version(dist)
    if version == "not installed":
        from edgecraft.backends.tvm.toolchain import TVM_INSTALL_HINT

        raise InputError(f"the {DEVICE_NAME} device mirrors the host's {dist}, which is not installed",
                         hint=TVM_INSTALL_HINT)
    return version


def _root_python(rootfs: Path) -> str:
    """``python3.X`` the arm64 root provides (the wheels are chosen for that version)."""
    link = rootfs / "usr" / "bin" / "python3"
    if not link.is_symlink() and not link.exists():
        raise RuntimeFailure(f"the arm64 root has no /usr/bin/python3 after unpacking (in {rootfs})")
    name = os.readlink(link) if link.is_symlink() else "python3"
    if not name.startswith("python3."):
        raise RuntimeFailure(f"cannot tell the arm64 root's Python version from /usr/bin/python3 -> {name}")
    return Path(name).name


def _run(cmd: list[str], what: str, *, hint: str | None = None) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False,
                              stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise RuntimeFailure(f"{what} failed to start: {exc}", hint=hint) from exc
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise RuntimeFailure(f"{what} failed (exit {done.returncode}): {' '.join(cmd[:6])} ...\n{tail}",
                             hint=hint)
    return done.stdout


__all__ = ["DEVICE_NAME", "EmulatedDevice", "apt_hint", "default_cache_dir", "setup_emulated_device"]
