"""Test-only strategy for the gate tests: a model that is really slower and bigger, with the same outputs."""

from __future__ import annotations

import copy
from collections.abc import Callable

from edgecraft.context import CompileContext, RunContext
from edgecraft.hookspecs import hookimpl
from edgecraft.models import ModelHandle, Stage, TorchModel
from edgecraft.strategy import Resolution, ResolvedStep, StepResult, Strategy, StrategyParams


class TwiceParams(StrategyParams):
    pass



class TwiceStrategy(Strategy):
    """Run two copies of the network and average them: identical outputs, ~2x the compute and the weights
    (separate initializers, so ONNX Runtime cannot merge them as a common subexpression)."""

    name = "test-twice"
    params_model = TwiceParams
    summary = "test only: an injected latency and size regression"

    def resolve(self, params: TwiceParams, ctx: CompileContext) -> Resolution:
        return Resolution(Stage.TORCH, "torch-duplicate", params)

    def apply(self, step: ResolvedStep, model: ModelHandle, ctx: RunContext) -> StepResult:
        from torch import nn

        assert isinstance(model, TorchModel)

        class Twice(nn.Module):
            def __init__(self, module: nn.Module) -> None:
                super().__init__()
                self.a, self.b = module, copy.deepcopy(module)

            def forward(self, x):  # type: ignore[no-untyped-def]
                return (self.a(x) + self.b(x)) * 0.5

        return StepResult(TorchModel(Twice(model.module).eval(), model.input_spec, model.output_name), {})


@hookimpl
def edgecraft_register_strategies(register: Callable[[type], None]) -> None:
    register(TwiceStrategy)
