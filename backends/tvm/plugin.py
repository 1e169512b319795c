"""Registers the TVM backend and the emulated aarch64 device. Imports nothing heavy (no TVM here)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from edgecraft.backends.tvm.backend import TvmBackend
from edgecraft.backends.tvm.device import DEVICE_NAME, EmulatedDevice, setup_emulated_device
from edgecraft.devices import Device
from edgecraft.hookspecs import hookimpl


class Arm64EmulatedDevice(Device):
    """`edgecraft device setup arm64-emulated`: Debian arm64 + TVM's runtime under QEMU user-mode."""

    name: ClassVar[str] = DEVICE_NAME
    summary: ClassVar[str] = ("aarch64 board emulated by QEMU user-mode (Debian arm64 + TVM runtime), "
                              "the default device of tvm-aarch64; timings are labelled emulated")

    def setup(self, cache_dir: Path | None = None, *, force: bool = False) -> Path:
        return setup_emulated_device(cache_dir, force=force, progress=print).home

    def status(self, cache_dir: Path | None = None) -> dict[str, Any]:
        device = EmulatedDevice.at(cache_dir)
        if not device.is_ready():
            return {"ready": False, "path": str(device.home)}
        m = device.manifest()
        return {"ready": True, "path": str(device.home), "tvm": m.get("tvm"), "debian": m.get("suite")}

    def serve(self, cache_dir: Path | None = None, *, tracker: str, key: str, host: str = "127.0.0.1",
              port: int | None = None, threads: int = 1, name: str | None = None,
              log_path: Path | None = None) -> int:
        from edgecraft.backends.tvm.rpc_server import serve

        return serve(EmulatedDevice.at(cache_dir), tracker=tracker, key=key, host=host, port=port, threads=threads,
                     name=name, log_path=log_path)


@hookimpl
def edgecraft_register_backends(register: Callable[[type[TvmBackend]], None]) -> None:
    register(TvmBackend)


@hookimpl
def edgecraft_register_devices(register: Callable[[type[Device]], None]) -> None:
    register(Arm64EmulatedDevice)
