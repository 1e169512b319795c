"""Registers the ``pruning`` strategy (imports no torch: registration must stay fast)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edgecraft.hookspecs import hookimpl


@hookimpl
def edgecraft_register_strategies(register: Callable[[Any], None]) -> None:
    from edgecraft.plugins.pruning.strategy import PruningStrategy

    register(PruningStrategy)
