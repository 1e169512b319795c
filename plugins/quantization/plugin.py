"""Entry point of the quantization strategy (imports nothing heavy)."""

from __future__ import annotations

from collections.abc import Callable

from edgecraft.hookspecs import hookimpl


@hookimpl
def edgecraft_register_strategies(register: Callable[[type], None]) -> None:
    from edgecraft.plugins.quantization.strategy import QuantizationStrategy

    register(QuantizationStrategy)
