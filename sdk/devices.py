"""Devices a backend can prepare for the user (e.g. an emulated aarch64 board), registered through
``edgecraft_register_devices`` and listed by ``edgecraft plugins``.

Only what any runtime's device does lives here; what is specific to one runtime (serving a board to TVM's
RPC tracker) lives with that backend, as do the commands that drive it (``edgecraft device ...`` comes
from the TVM backend)."""

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
