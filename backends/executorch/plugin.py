"""Entry point of the ExecuTorch backend (imports nothing heavy)."""

from __future__ import annotations

from collections.abc import Callable

from edgecraft.hookspecs import hookimpl


@hookimpl
def edgecraft_register_backends(register: Callable[[type], None]) -> None:
    from edgecraft.backends.executorch.backend import ExecutorchBackend

    register(ExecutorchBackend)


@hookimpl
def edgecraft_register_implementations(register: Callable[[type], None]) -> None:
    from edgecraft.backends.executorch.fp16 import EtFp16
    from edgecraft.backends.executorch.quantize import EtInt8

    register(EtInt8)
    register(EtFp16)
