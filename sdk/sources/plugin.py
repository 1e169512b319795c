"""Registers the built-in model source kinds through the same hook a third-party package uses."""

from __future__ import annotations

from collections.abc import Callable

from edgecraft.hookspecs import hookimpl
from edgecraft.model_source import ModelSourceKind


@hookimpl
def edgecraft_register_model_sources(register: Callable[[type[ModelSourceKind]], None]) -> None:
    from edgecraft.sources.onnx_file import OnnxFileSource
    from edgecraft.sources.torch_factory import TorchFactorySource

    register(OnnxFileSource)
    register(TorchFactorySource)
    try:
        from edgecraft.sources.huggingface import HuggingFaceSource
    except ImportError:  # the module itself needs nothing; transformers is imported only when loading
        return
    register(HuggingFaceSource)
