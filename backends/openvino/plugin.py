"""Entry point of the OpenVINO backend (imports nothing heavy)."""

from __future__ import annotations

from collections.abc import Callable

from edgecraft.hookspecs import hookimpl


@hookimpl
def edgecraft_register_backends(register: Callable[[type], None]) -> None:
    from edgecraft.backends.openvino.backend import OpenVinoBackend

    register(OpenVinoBackend)


@hookimpl
def edgecraft_register_implementations(register: Callable[[type], None]) -> None:
    from edgecraft.backends.openvino.quantize import OvInt8

    register(OvInt8)
