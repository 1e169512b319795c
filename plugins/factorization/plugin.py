"""Entry point of the factorization strategy: registration only, so it imports nothing heavy (no torch)."""

from __future__ import annotations

from collections.abc import Callable

from edgecraft.hookspecs import hookimpl


@hookimpl
def edgecraft_register_strategies(register: Callable[[type], None]) -> None:
    from edgecraft.plugins.factorization.strategy import FactorizationStrategy

    register(FactorizationStrategy)
