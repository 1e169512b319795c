"""Devices a backend can prepare for the user (e.g. an emulated aarch64 board), exposed as
``edgecraft device list`` and ``edgecraft device setup NAME``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar


class Device(ABC):
    """Something that must be prepared once (and cached) before a target can run on it."""

    name: ClassVar[str]
    summary: ClassVar[str] = ""

    @abstractmethod
    def setup(self, cache_dir: Path | None = None, *, force: bool = False) -> Path:
        """Prepare the device (idempotent, cached); return where it lives. Raise InputError with the
        install command when a prerequisite (QEMU, a cross compiler) is missing."""

    def status(self, cache_dir: Path | None = None) -> dict[str, Any]:
        """Whether the device is ready, and facts about it."""
        return {}

    def serve(self, cache_dir: Path | None = None, *, tracker: str, key: str, host: str = "127.0.0.1",
              port: int | None = None, threads: int = 1, name: str | None = None,
              log_path: Path | None = None) -> int:
        """Serve the device as a board registered with a TVM RPC tracker, in the foreground, until
        interrupted; return the exit code. Devices that cannot be served keep this default."""
        from edgecraft.errors import InputError

        raise InputError(f"device {self.name!r} cannot be served to a tracker")
