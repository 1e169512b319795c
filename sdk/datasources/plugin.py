"""Registers the built-in dataset kinds through the same hook a third-party package uses."""

from __future__ import annotations

from collections.abc import Callable

from edgecraft.datasets import DatasetKind
from edgecraft.hookspecs import hookimpl


def builtin_kind_classes() -> list[type[DatasetKind]]:
    from edgecraft.datasources.digits import DigitsKind
    from edgecraft.datasources.factory import FactoryKind
    from edgecraft.datasources.npz import NpzKind

    kinds: list[type[DatasetKind]] = [DigitsKind, NpzKind, FactoryKind]
    for module, cls in (("edgecraft.datasources.text", "TextKind"),
                        ("edgecraft.datasources.image_folder", "ImageFolderKind")):
        try:
            imported = __import__(module, fromlist=[cls])
        except ImportError:
            continue
        kinds.append(getattr(imported, cls))
    return kinds


def builtin_kinds() -> dict[str, DatasetKind]:
    return {cls.kind: cls() for cls in builtin_kind_classes()}


@hookimpl
def edgecraft_register_datasets(register: Callable[[type[DatasetKind]], None]) -> None:
    for cls in builtin_kind_classes():
        register(cls)
