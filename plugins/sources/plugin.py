"""Registers the built-in model source kinds through the same hook a third-party package uses.

The ``sources`` entry point is one of the core plugins (see :data:`edgecraft.registry.CORE_PLUGINS`):
an allowlist of other plugins still loads it. The kinds' modules import no framework at import time
(torch and transformers are imported when a model is loaded), so every kind registers whatever extras
are installed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edgecraft.hookspecs import hookimpl

if TYPE_CHECKING:
    from edgecraft.model_source import ModelSourceKind


@hookimpl
def edgecraft_register_model_sources(register: Callable[[type[ModelSourceKind[Any]]], None]) -> None:
    # Imported here: this entry module stays light (`edgecraft --help` imports every entry module).
    from edgecraft.plugins.sources.huggingface import HuggingFaceSource
    from edgecraft.plugins.sources.onnx_file import OnnxFileSource
    from edgecraft.plugins.sources.torch_factory import TorchFactorySource

    for cls in (OnnxFileSource, TorchFactorySource, HuggingFaceSource):  # listing order
        register(cls)
