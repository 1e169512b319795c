"""Entry point: registration only, so ``edgecraft plugins`` stays fast (onnx is imported when the step runs)."""

from __future__ import annotations

from collections.abc import Callable

from edgecraft.hookspecs import hookimpl


@hookimpl
def edgecraft_register_strategies(register: Callable[[type], None]) -> None:
    from edgecraft_fp16_weights.strategy import Fp16WeightsStrategy

    register(Fp16WeightsStrategy)
