"""The emulated aarch64 board: a Debian arm64 userland run by QEMU user-mode, shared by every runtime.

A runtime-neutral service: :func:`setup_board` prepares the userland once and caches it, with the base
packages a backend asks for (the TVM backend: its runtime, ``edgecraft device setup arm64-emulated``);
:func:`install_board_packages` adds another backend's aarch64 wheels as a group of their own (ONNX Runtime's),
and :func:`board_cpu_features` reads the CPU features the board's kernels see. Backends start their own
processes in it (TVM's RPC server, ONNX Runtime's board server) through :meth:`EmulatedDevice.python`.

How it is built, and why this way:

* ``debootstrap --foreign --arch=arm64 --variant=minbase --include=python3,libgomp1,libstdc++6``
  downloads and verifies (Debian's keyring) the arm64 packages. Only the *first* stage runs: the second
  stage would execute arm64 maintainer scripts inside a chroot, which needs binfmt_misc registered for
  QEMU, which containers and CI runners usually cannot do. Instead every downloaded package is unpacked
  with ``dpkg-deb -x``; the device needs files (an arm64 ``python3.11``, its stdlib, libc, libstdc++,
  libgomp), not a configured system. ~20 s instead of the ~3 min of a full debootstrap.
* The aarch64 wheels (the base: whatever the caller of :func:`setup_board` requires, e.g. TVM's runtime;
  groups: :func:`install_board_packages`) are downloaded by the host's pip and installed offline by the host's
  pip with ``--target``/``--platform`` into ``/opt/edgecraft/site-packages`` (groups:
  ``/opt/edgecraft/packages/GROUP``) of the root. No emulated pip run, no chroot.
* QEMU runs the arm64 Python as ``qemu-aarch64-static -L ROOT ROOT/usr/bin/python3.11`` (``-L`` makes
  the arm64 loader and libraries resolve inside ROOT). A host shell script, ``bin/python-aarch64``,
  wraps that command so TVM's RPC server can re-launch "itself" (it spawns ``sys.executable`` for its
  worker process, and without binfmt an arm64 binary cannot be exec'ed directly).

Everything is built in a temporary sibling directory and renamed into place, so an interrupted setup
leaves no half-made device behind.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecraft.errors import InputError, RuntimeFailure

QEMU = "qemu-aarch64-static"
#: tool -> the Debian package that provides it
#: The cross compiler that links code for the board (TVM's libraries; any native runner a backend builds).
CROSS_CXX = "aarch64-linux-gnu-g++"
#: tool -> the Debian package that provides it
_APT_PACKAGES = {
    CROSS_CXX: "g++-aarch64-linux-gnu",
    QEMU: "qemu-user-static",
    "debootstrap": "debootstrap",
    "dpkg-deb": "dpkg",
}
DEVICE_NAME = "arm64-emulated"
DEFAULT_SUITE = "bookworm"  # Debian 12: Python 3.11, glibc 2.36 (the aarch64 wheels need manylinux_2_28)
DEFAULT_MIRROR = "http://deb.debian.org/debian"
ROOT_PACKAGES = ("python3", "libgomp1", "libstdc++6")
SITE_PACKAGES = "opt/edgecraft/site-packages"
#: Where :func:`install_board_packages` puts each group of a backend's wheels (relative to the root).
PACKAGES = "opt/edgecraft/packages"
MANIFEST = "device.json"
LAUNCHER = "bin/python-aarch64"
#: Wheel platform tags the aarch64 wheels on the package index use.
WHEEL_PLATFORMS = ("manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64")
#: QEMU CPU model of the emulated board: a Cortex-A76, the big core of the Raspberry Pi 5 and the RK3588
#: (NEON, dot product, fp16 arithmetic; no SVE, no i8mm), so the board is one users ship to. QEMU's "max" was
#: the default until measured wrong: with its SME on (QEMU 7.2), ONNX Runtime 1.27's dynamic int8
#: MatMul (DynamicQuantizeMatMul) returns wrong numbers (max abs diff 70 on a 64x384x384 product; exact with
#: `max,sme=off`, with `max,sve=off` and on cortex-a72/a76; QEMU's SMMLA/UMMLA/USMMLA are exact), see
#: docs/arm-boards.md. ``EDGECRAFT_QEMU_CPU`` picks another model for one run.
DEFAULT_QEMU_CPU = "cortex-a76"

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
            **({"tvm_runtime": m["tvm"]} if "tvm" in m else {}),
            "note": "latency measured under QEMU emulation says nothing about a real ARM core",
        }

    def python(self, *args: str) -> list[str]:
        """Command line running the device's arm64 Python with ``args``."""
        return [str(self.launcher), *args]

    def native(self, program: Path | str, *args: str) -> list[str]:
        """Command line running a native aarch64 program (linked for the board, e.g. a backend's runner) under
        QEMU with the board's CPU model; ``-L`` resolves its loader, libraries and absolute rpaths in the root."""
        cpu = os.environ.get("EDGECRAFT_QEMU_CPU", self.manifest().get("qemu_cpu", DEFAULT_QEMU_CPU))
        return [require_tool(QEMU, f"the {DEVICE_NAME} device"), "-cpu", cpu, "-L", str(self.rootfs), str(program),
                *args]


Progress = Callable[[str], None]


def setup_board(
    cache_dir: Path | str | None = None,
    *,
    requirements: Sequence[str],
    pins: dict[str, str],
    probe_module: str = "numpy",
    suite: str = DEFAULT_SUITE,
    mirror: str | None = None,
    wheel_dir: Path | str | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> EmulatedDevice:
    """Prepare the emulated aarch64 board under ``cache_dir`` (default :func:`default_cache_dir`) with the base
    ``requirements`` (pip requirement strings for aarch64 wheels) installed.

    Idempotent: a ready board whose manifest holds the same ``pins`` (e.g. ``{"tvm": "0.27.0"}``) is returned
    at once unless ``force``. ``mirror`` defaults to ``$EDGECRAFT_DEBIAN_MIRROR`` or deb.debian.org.
    ``wheel_dir`` holding the aarch64 wheels makes the Python part offline; otherwise they are downloaded (and
    kept) in ``cache_dir/wheels``. ``probe_module`` is imported on the emulated CPU as the smoke test.
    """
    say = progress or (lambda msg: None)
    device = EmulatedDevice.at(cache_dir)
    mirror = mirror or os.environ.get("EDGECRAFT_DEBIAN_MIRROR", DEFAULT_MIRROR)

    if device.is_ready() and not force:
        m = device.manifest()
        if all(m.get(k) == v for k, v in pins.items()):
            if m.get("qemu_cpu") != DEFAULT_QEMU_CPU:
                _switch_cpu(device, m, say)
            say(f"{DEVICE_NAME}: ready in {device.home}")
            return device
        say(f"{DEVICE_NAME}: {', '.join(f'{k} {m.get(k)}' for k in pins)} in the device, the host wants "
            f"{', '.join(f'{k} {v}' for k, v in pins.items())}: rebuilding")

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
        _pip_install(rootfs / SITE_PACKAGES, requirements, python_name.removeprefix("python"),
                     device.home.parent, wheel_dir, say)

        launcher = staging / LAUNCHER
        launcher.parent.mkdir(parents=True)
        launcher.write_text(_LAUNCHER_SCRIPT.format(site=SITE_PACKAGES, qemu=qemu, cpu=DEFAULT_QEMU_CPU))
        launcher.chmod(0o755)

        say(f"{DEVICE_NAME}: checking that {probe_module} imports on the emulated CPU")
        probe = _run([str(launcher), "-c", f"import json, platform, numpy, {probe_module}; print(json.dumps("
                      "{'machine': platform.machine(), 'python': platform.python_version(), "
                      "'numpy': numpy.__version__}))"],
                     f"the device's smoke test (import {probe_module} under QEMU)")
        facts = json.loads(probe.strip().splitlines()[-1])
        if facts["machine"] != "aarch64":
            raise RuntimeFailure(f"the emulated device reports machine {facts['machine']!r}, not aarch64")
        manifest = {
            "name": DEVICE_NAME, "suite": suite, "mirror": mirror, "python": facts["python"],
            "machine": facts["machine"], **pins,
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


def _switch_cpu(device: EmulatedDevice, manifest: dict[str, Any], say: Progress) -> None:
    """Point a board set up with another default CPU model at :data:`DEFAULT_QEMU_CPU` (the userland stays)."""
    say(f"{DEVICE_NAME}: emulated CPU {manifest.get('qemu_cpu')} -> {DEFAULT_QEMU_CPU}")
    qemu = require_tool(QEMU, f"the {DEVICE_NAME} device")
    for path, text in ((device.launcher, _LAUNCHER_SCRIPT.format(site=SITE_PACKAGES, qemu=qemu, cpu=DEFAULT_QEMU_CPU)),
                       (device.manifest_path, json.dumps({**manifest, "qemu_cpu": DEFAULT_QEMU_CPU}, indent=2) + "\n")):
        staging = path.with_name(f".{path.name}.{os.getpid()}")
        staging.write_text(text)
        staging.chmod(path.stat().st_mode)
        staging.replace(path)


def install_board_packages(device: EmulatedDevice, group: str, requirements: Sequence[str], *,
                           wheel_dir: Path | str | None = None, force: bool = False,
                           progress: Progress | None = None, deps: bool = False) -> str:
    """Install a backend's aarch64 wheels into the board as ``group`` (``/opt/edgecraft/packages/GROUP``,
    without dependencies unless ``deps``: the group lists all it needs); return that path as the board sees it.

    Idempotent (a marker in the device's folder records the requirements installed) and offline after the
    first download (the wheels are kept in the cache's ``wheels`` folder, or come from ``wheel_dir``).
    A group of its own keeps each runtime's pins apart: ONNX Runtime's numpy need not be TVM's.
    """
    say = progress or (lambda msg: None)
    manifest = device.manifest()  # InputError: run `device setup`
    on_board = f"/{PACKAGES}/{group}"
    marker = device.home / f"packages-{group}.json"
    wanted = sorted(requirements)
    if not force and marker.is_file() and json.loads(marker.read_text()).get("requirements") == wanted:
        return on_board
    target = device.rootfs / PACKAGES / group
    staging = target.with_name(f".{group}.{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _pip_install(staging, wanted, str(manifest["python"]).rsplit(".", 1)[0], device.home.parent, wheel_dir, say,
                     deps=deps)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    marker.write_text(json.dumps({"group": group, "requirements": wanted, "path": on_board}, indent=2) + "\n")
    say(f"{DEVICE_NAME}: {group} packages installed in {on_board}")
    return on_board


def board_packages(device: EmulatedDevice, group: str) -> str | None:
    """Where ``group``'s packages are on the board, or None if :func:`install_board_packages` has not run."""
    marker = device.home / f"packages-{group}.json"
    return str(json.loads(marker.read_text())["path"]) if marker.is_file() else None


def prepared_board(cache_dir: Path | str | None, group: str, *, target: str, runtime: str,
                   version: str) -> EmulatedDevice:
    """The set-up board with ``group``'s packages installed, or an InputError naming the command that does it.

    One check for every backend that runs on the board (``target`` and ``runtime version`` go in the message).
    """
    device = EmulatedDevice.at(cache_dir)
    device.manifest()  # InputError: run `edgecraft device setup arm64-emulated`
    if board_packages(device, group) is None:
        raise InputError(f"target {target!r}: {runtime}'s aarch64 wheel is not installed on the {DEVICE_NAME} "
                         f"board in {device.home}", hint=f"run `edgecraft device setup {DEVICE_NAME}` (installs "
                         f"every backend's board packages; {runtime} {version})")
    return device


#: AT_HWCAP / AT_HWCAP2 bits of the Linux arm64 ABI (arch/arm64/include/uapi/asm/hwcap.h).
_HWCAP = {"fphp": 9, "asimdhp": 10, "asimddp": 20, "sve": 22}
_HWCAP2 = {"sve2": 1, "i8mm": 13, "bf16": 14, "sme": 23}
_FEATURE_PROBE = ("import ctypes, json; g = ctypes.CDLL(None).getauxval; g.restype = ctypes.c_ulong; "
                  "print(json.dumps([g(16), g(26)]))")


def board_cpu_features(device: EmulatedDevice) -> dict[str, bool]:
    """The CPU features the board's kernels see, read on the board from the ELF auxiliary vector.

    Why not the kernel's cpuinfo file: under QEMU user-mode it is the *host's* file (an x86 CPU's flags); the
    auxiliary vector (``getauxval(AT_HWCAP)``) is what QEMU sets for the emulated CPU, and what ONNX Runtime's
    and XNNPACK's own feature detection read. asimddp = int8 dot product (SDOT/UDOT), i8mm = int8 matrix
    multiply (SMMLA), fphp/asimdhp = fp16 arithmetic.
    """
    out = _run(device.python("-c", _FEATURE_PROBE), "reading the board's CPU features (getauxval)")
    hwcap, hwcap2 = json.loads(out.strip().splitlines()[-1])
    return decode_hwcaps(hwcap, hwcap2)


#: ARM's fp16-arithmetic features (FEAT_FP16: scalar ``fphp``, vector ``asimdhp``), as :func:`board_cpu_features`
#: names them: what ONNX Runtime's MLAS and XNNPACK need to compute in fp16 on an ARM core.
ARM_FP16_FEATURES = ("asimdhp", "fphp")


def has_arm_fp16(features: dict[str, bool]) -> bool:
    """Whether a board CPU with these features (read on the board) has fp16 arithmetic."""
    return any(features.get(flag) for flag in ARM_FP16_FEATURES)


def decode_hwcaps(hwcap: int, hwcap2: int) -> dict[str, bool]:
    """The features :func:`board_cpu_features` reports, from ``getauxval(AT_HWCAP)`` and ``(AT_HWCAP2)`` read on
    the board (a process already running there can read them itself and save a QEMU start)."""
    features = {name: bool(hwcap >> bit & 1) for name, bit in _HWCAP.items()}
    features.update({name: bool(hwcap2 >> bit & 1) for name, bit in _HWCAP2.items()})
    return features


def _pip_install(target: Path, requirements: Sequence[str], py_version: str, cache: Path,
                 wheel_dir: Path | str | None, say: Progress, *, deps: bool = True) -> None:
    """Download (unless ``wheel_dir``) and install aarch64 wheels for the board's Python with the host's pip."""
    wheels = Path(wheel_dir) if wheel_dir is not None else cache / "wheels"
    platform_args = [f"--python-version={py_version}", "--implementation=cp",
                     f"--abi=cp{py_version.replace('.', '')}", "--only-binary=:all:"]
    platform_args += [f"--platform={plat}" for plat in WHEEL_PLATFORMS]
    no_deps = [] if deps else ["--no-deps"]
    installed = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(wheels),
                 "--target", str(target), *no_deps, *platform_args, *requirements]
    if wheel_dir is None and not _quiet_ok([*installed, "--dry-run"]):
        say(f"{DEVICE_NAME}: downloading aarch64 wheels ({', '.join(requirements)}) into {wheels}")
        wheels.mkdir(parents=True, exist_ok=True)
        _run([sys.executable, "-m", "pip", "download", "-q", "-d", str(wheels), *no_deps, *platform_args,
              *requirements], "downloading the aarch64 wheels",
             hint="pass wheel_dir (--wheel-dir) with the aarch64 wheels to set up offline")
    say(f"{DEVICE_NAME}: installing {', '.join(requirements)} offline into {target.name}")
    _run(installed, "installing the aarch64 wheels into the device")


def _quiet_ok(cmd: list[str]) -> bool:
    """Whether ``cmd`` succeeds (here: pip finds every wheel in the local folder, so nothing is downloaded)."""
    try:
        return subprocess.run(cmd, capture_output=True, check=False, stdin=subprocess.DEVNULL).returncode == 0
    except OSError:
        return False


def apt_hint(*tools: str) -> str:
    packages = " ".join(dict.fromkeys(_APT_PACKAGES[t] for t in tools))
    return f"sudo apt-get update && sudo apt-get install -y {packages}"


def require_tool(tool: str, purpose: str) -> str:
    """Absolute path of ``tool`` on PATH, or an InputError with the apt-get command that installs it."""
    path = shutil.which(tool)
    if path is None:
        raise InputError(f"{purpose} needs `{tool}`, which is not on PATH", hint=apt_hint(tool))
    return path


@functools.cache
def tool_version(tool: str) -> str:
    """First line of ``tool --version``."""
    path = shutil.which(tool)
    if path is None:
        return "not installed"
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = (done.stdout or done.stderr).splitlines()
    return lines[0].strip() if lines else "unknown"


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


__all__ = ["DEVICE_NAME", "EmulatedDevice", "board_cpu_features", "board_packages", "decode_hwcaps",
           "default_cache_dir", "install_board_packages", "setup_board"]
