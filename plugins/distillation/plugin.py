"""Registers the ``distillation`` strategy (imports no torch: the strategy imports it when it runs)."""

from __future__ import annotations

from collections.abc import Callable

from edgecraft.hookspecs import hookimpl


@hookimpl
def edgecraft_register_strategies(register: Callable[[type], None]) -> None:
    from edgecraft.plugins.distillation.strategy import DistillationStrategy

    register(DistillationStrategy)
