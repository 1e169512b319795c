"""Test-only strategies that exercise the flow without the real compression plugins."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from edgecraft.context import CompileContext, RunContext
from edgecraft.hookspecs import hookimpl
from edgecraft.models import ModelHandle, Stage, TorchModel
from edgecraft.strategy import Resolution, ResolvedStep, StepResult, Strategy, StrategyParams
from pydantic import Field


class NoiseParams(StrategyParams):
    """Add Gaussian noise to every weight: a deliberately harmful "compression" to fail contracts."""

    std: float = Field(0.0, ge=0, description="Noise standard deviation relative to each tensor's std.")
    seed: int = 0


class NoiseStrategy(Strategy):
    name = "test-noise"
    params_model = NoiseParams
    summary = "test only: perturb weights"

    def resolve(self, params: NoiseParams, ctx: CompileContext) -> Resolution:
        return Resolution(Stage.TORCH, "torch-gaussian", params, notes=["test strategy"])

    def apply(self, step: ResolvedStep, model: ModelHandle, ctx: RunContext) -> StepResult:
        import torch

        assert isinstance(model, TorchModel)
        gen = torch.Generator().manual_seed(step.params["seed"])
        with torch.no_grad():
            for p in model.module.parameters():
                p.add_(torch.randn(p.shape, generator=gen) * p.std().nan_to_num(0) * step.params["std"])
        return StepResult(model, {"std": step.params["std"]})


class NeedsParams(StrategyParams):
    capability: str = "no.such.capability"
    when: Literal["compile", "apply"] = "compile"


class NeedsCapabilityStrategy(Strategy):
    """Fails at compile time unless the target has a capability; or raises while applying."""

    name = "test-needs"
    params_model = NeedsParams

    def resolve(self, params: NeedsParams, ctx: CompileContext) -> Resolution:
        if params.when == "compile" and not ctx.target.has(params.capability):
            raise ctx.error(f"the target lacks capability {params.capability!r}",
                            hint="targets with it: none in tests")
        return Resolution(Stage.ONNX, "onnx-identity", params)

    def apply(self, step: ResolvedStep, model: ModelHandle, ctx: RunContext) -> StepResult:
        raise ZeroDivisionError("boom inside a plugin")


@hookimpl
def edgecraft_register_strategies(register: Callable[[type], None]) -> None:
    register(NoiseStrategy)
    register(NeedsCapabilityStrategy)


# ---------------------------------------------------------------- a contract kind of a third party
from edgecraft.verify.contracts import Verdict  # noqa: E402  (kept with the kind it serves)
from edgecraft.verify.judging import ContractKind, Measured  # noqa: E402
from pydantic import BaseModel, ConfigDict  # noqa: E402


class MaxKilobytesContract(BaseModel):
    """``{kind: test-max-kb, max_kb: N}``: the compressed artifact is at most N kB (a plugin's own kind)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["test-max-kb"] = "test-max-kb"
    name: str | None = None
    max_kb: float = Field(gt=0)

    def describe_bound(self) -> str:
        return f"compressed <= {self.max_kb:g} kB"


class MaxKilobytes(ContractKind[MaxKilobytesContract]):
    kind = "test-max-kb"
    model = MaxKilobytesContract
    measures = "size"
    summary = "the compressed artifact's size in kB"

    def judge(self, contract: MaxKilobytesContract, measured: Measured) -> Verdict:
        kb = measured.size_bytes["compressed"] / 1000
        passed = kb <= contract.max_kb
        return Verdict(name=self.describe(contract), kind=self.kind, passed=passed,
                       status="pass" if passed else "fail", measured=kb, bound=contract.max_kb, unit="kB",
                       detail=f"{kb:.1f} kB vs at most {contract.max_kb:g} kB")


@hookimpl
def edgecraft_register_contract_kinds(register: Callable[[type], None]) -> None:
    register(MaxKilobytes)
