"""Entry point of the ONNX Runtime backend: registration only, so it imports nothing heavy."""

from __future__ import annotations

from collections.abc import Callable

from edgecraft.hookspecs import hookimpl


@hookimpl
def edgecraft_register_backends(register: Callable[[type], None]) -> None:
    from edgecraft.backends.onnxruntime.backend import OnnxRuntimeBackend

    register(OnnxRuntimeBackend)


@hookimpl
def edgecraft_register_implementations(register: Callable[[type], None]) -> None:
    from edgecraft.backends.onnxruntime.fp16_step import OrtFp16
    from edgecraft.backends.onnxruntime.quantize import OrtInt8

    register(OrtInt8)
    register(OrtFp16)
