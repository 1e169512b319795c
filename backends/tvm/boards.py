"""The devices the TVM backend registers, and what serving one to a TVM RPC tracker takes.

The core's :class:`edgecraft.devices.Device` knows only what any runtime's device does (prepare it, say
whether it is ready). Serving a device as a board behind TVM's RPC tracker (``edgecraft device serve``) is
TVM's business, so that part lives here: :class:`TrackerBoard` adds it, and the ``device serve`` command
accepts only devices that are one.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from edgecraft.backends.tvm.device import DEVICE_NAME, EmulatedDevice, setup_emulated_device
from edgecraft.devices import Device


class TrackerBoard(Device):
    """A device that can serve as a board registered with a TVM RPC tracker (``edgecraft device serve``)."""

    @abstractmethod
    def serve(self, cache_dir: Path | None = None, *, tracker: str, key: str, host: str = "127.0.0.1",
              port: int | None = None, threads: int = 1, name: str | None = None,
              log_path: Path | None = None) -> int:
        """Serve the device as a board registered with the tracker at ``tracker`` (``HOST:PORT``) under ``key``,
        in the foreground, until interrupted; return the exit code."""


class Arm64EmulatedDevice(TrackerBoard):
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
