"""Registers the built-in dataset kinds through the same hook a third-party package uses.

The ``datasets`` entry point is one of the core plugins (see :data:`edgecraft.registry.CORE_PLUGINS`):
an allowlist of other plugins still loads it. Each kind's module imports only numpy and pydantic; what
a kind reads its data with (scikit-learn, transformers, Pillow) is imported when it loads, so every kind
registers whatever extras are installed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edgecraft.hookspecs import hookimpl

if TYPE_CHECKING:
    from edgecraft.datasets import DatasetKind


@hookimpl
def edgecraft_register_datasets(register: Callable[[type[DatasetKind[Any]]], None]) -> None:
    # Imported here: this entry module stays light (`edgecraft --help` imports every entry module).
    from edgecraft.plugins.datasets.digits import DigitsKind
    from edgecraft.plugins.datasets.factory import FactoryKind
    from edgecraft.plugins.datasets.image_folder import ImageFolderKind
    from edgecraft.plugins.datasets.npz import NpzKind
    from edgecraft.plugins.datasets.text import TextKind

    for cls in (DigitsKind, NpzKind, FactoryKind, TextKind, ImageFolderKind):  # listing order
        register(cls)
