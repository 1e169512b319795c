"""Entry point: registration only (the backend module is imported when the registry asks for it)."""

from __future__ import annotations

from collections.abc import Callable

from edgecraft.hookspecs import hookimpl


@hookimpl
def edgecraft_register_backends(register: Callable[[type], None]) -> None:
    from edgecraft_onnx_reference.backend import OnnxReferenceBackend

    register(OnnxReferenceBackend)
