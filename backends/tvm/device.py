"""The emulated aarch64 device with TVM's runtime in it (the board itself is the SDK's :mod:`edgecraft.boards`).

``setup_emulated_device`` prepares the board with the aarch64 wheels of apache-tvm (with its ``rpc`` extra:
tornado, psutil, cloudpickle), apache-tvm-ffi and numpy as its base packages, at the host's TVM versions so
both ends of the RPC speak the same protocol; :mod:`edgecraft.backends.tvm.rpc_server` starts TVM's RPC server
in it for each run.
"""

from __future__ import annotations

from pathlib import Path

from edgecraft.backends.tvm.toolchain import dist_version
from edgecraft.boards import DEVICE_NAME, EmulatedDevice, Progress, default_cache_dir, setup_board
from edgecraft.errors import InputError


def setup_emulated_device(
    cache_dir: Path | str | None = None,
    *,
    suite: str | None = None,
    mirror: str | None = None,
    wheel_dir: Path | str | None = None,
    tvm_version: str | None = None,
    tvm_ffi_version: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> EmulatedDevice:
    """Prepare the board with TVM's runtime (idempotent; rebuilt when the host's TVM versions change).
    Versions default to the host's apache-tvm and apache-tvm-ffi."""
    tvm_version = tvm_version or _host_version("apache-tvm")
    tvm_ffi_version = tvm_ffi_version or _host_version("apache-tvm-ffi")
    extra = {"suite": suite} if suite else {}
    return setup_board(cache_dir, requirements=[f"apache-tvm[rpc]=={tvm_version}",
                                                f"apache-tvm-ffi=={tvm_ffi_version}"],
                       pins={"tvm": tvm_version, "tvm_ffi": tvm_ffi_version}, probe_module="tvm",
                       mirror=mirror, wheel_dir=wheel_dir, force=force, progress=progress, **extra)


def _host_version(dist: str) -> str:
    version = dist_version(dist)
    if version == "not installed":
        from edgecraft.backends.tvm.toolchain import TVM_INSTALL_HINT

        raise InputError(f"the {DEVICE_NAME} device mirrors the host's {dist}, which is not installed",
                         hint=TVM_INSTALL_HINT)
    return version


__all__ = ["DEVICE_NAME", "EmulatedDevice", "default_cache_dir", "setup_emulated_device"]
