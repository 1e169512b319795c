"""Registers the TVM backend, the emulated aarch64 device and the ``edgecraft device`` commands.

Imports nothing heavy, not even the backend: ``edgecraft --help`` imports this module to find the commands.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from edgecraft.hookspecs import hookimpl

if TYPE_CHECKING:
    import typer
    from edgecraft.backends.tvm.backend import TvmBackend
    from edgecraft.devices import Device


@hookimpl
def edgecraft_register_backends(register: Callable[[type[TvmBackend]], None]) -> None:
    from edgecraft.backends.tvm.backend import TvmBackend

    register(TvmBackend)


@hookimpl
def edgecraft_register_devices(register: Callable[[type[Device]], None]) -> None:
    from edgecraft.backends.tvm.boards import Arm64EmulatedDevice

    register(Arm64EmulatedDevice)


@hookimpl
def edgecraft_register_commands(cli: typer.Typer) -> None:
    from edgecraft.backends.tvm.commands import device_app

    cli.add_typer(device_app, name="device")
