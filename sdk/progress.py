"""Progress reporting that library code can call without depending on a terminal."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol, TypeVar

T = TypeVar("T")


class Progress(Protocol):
    def track(self, items: Iterable[T], *, total: int | None = None, description: str = "") -> Iterator[T]:
        """Yield ``items`` while showing progress."""
        ...

    def status(self, message: str) -> None:
        """A one-line note of what is happening now."""
        ...


class NullProgress:
    """Shows nothing: the default for library use and tests."""

    def track(self, items: Iterable[T], *, total: int | None = None, description: str = "") -> Iterator[T]:
        yield from items

    def status(self, message: str) -> None:
        return None
