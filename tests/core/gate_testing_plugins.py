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
    """Run two copies of the network and average them: the same outputs, ~2x the compute and the weights."""

    name = "test-twice"
    params_model = TwiceParams
    summary = "test only: an injected latency and size regression"

    def resolve(self, params: TwiceParams, ctx: CompileContext) -> Resolution:
        return Resolution(Stage.TORCH, "torch-duplicate", params)

    def apply(self, step: ResolvedStep, model: ModelHandle, ctx: RunContext) -> StepResult:
        import torch
        from torch import nn

        assert isinstance(model, TorchModel)

        class Twice(nn.Module):
            def __init__(self, module: nn.Module) -> None:
                super().__init__()
                self.a, self.b = module, copy.deepcopy(module)
                # Exporters and ONNX Runtime merge identical initializers and then identical subgraphs: make
                # the copy's weights differ (by a relative 1e-6, far below any metric's resolution).
                with torch.no_grad():
                    for param in self.b.parameters():
                        param.mul_(1 + 1e-6)

            def forward(self, x):  # type: ignore[no-untyped-def]
                return (self.a(x) + self.b(x)) * 0.5

        return StepResult(model.with_module(Twice(model.module).eval()), {})


@hookimpl
def edgecraft_register_strategies(register: Callable[[type], None]) -> None:
    register(TwiceStrategy)
