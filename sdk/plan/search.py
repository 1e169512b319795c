"""The plan's optional ``search:`` section: what ``edgecraft search`` explores and what it optimizes.

It lives in the plan (not in CLI flags) because a search space is part of the release specification:
the same plan, searched twice, must explore the same recipes, and a reviewer reads the ranges next to
the contracts they are meant to meet. Only the structure is checked here; whether a space entry names
a real step and param, and whether its range fits the param's own bounds, needs the installed
strategies and is checked by :func:`edgecraft.search.space.resolve_space` (exit 2 naming the entry).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from edgecraft.plan.numbers import MAX_SEARCH_BUDGET_S, FiniteFloat, PlanInt
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: Objective names: what one trial is scored on (accuracy is maximized, everything else minimized).
OBJECTIVE_PATTERN = re.compile(r"^(accuracy(\.[A-Za-z0-9_\-]+)?|latency\.(p50|p95|p99)|size|memory|macs)$")


#: ``sampler: auto`` takes the GP sampler up to this many trials per target (its ask grows with the trials).
GP_MAX_TRIALS = 100


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RangeDim(_Strict):
    """A numeric range: a float param is sampled in [low, high], an int param among the integers in it."""

    low: FiniteFloat
    high: FiniteFloat
    log: bool = Field(False, description="Sample on a log scale (learning rates, ranks).")
    step: FiniteFloat | None = Field(None, gt=0, description="Quantize sampled values to low + k * step.")

    @model_validator(mode="after")
    def _ordered(self) -> RangeDim:
        if self.low > self.high:
            raise ValueError(f"low ({self.low:g}) must not exceed high ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError("a log-scale range needs low > 0")
        return self


class ChoiceDim(_Strict):
    """A categorical choice among values (strings, numbers, booleans or null)."""

    choices: list[str | bool | PlanInt | FiniteFloat | None] = Field(min_length=1)


SpaceDim = RangeDim | ChoiceDim


class SearchSpec(_Strict):
    """``search:`` in a plan. Everything has a default, so ``edgecraft search`` works on any plan."""

    objective: list[str] = Field(
        default_factory=lambda: ["accuracy", "latency.p50", "size"],
        description="What trials are scored on, in priority order: accuracy[.METRIC] (maximized; default metric: "
        "the accuracy contract's, else the first evaluation metric), latency.p50|p95|p99 (candidate/baseline "
        "ratio from the same interleaved rounds, minimized), size (bytes), memory (peak bytes, measured only "
        "when the plan measures memory), macs. The first objective also picks the best candidate (ties within "
        "the measurement's confidence interval go to the next).")
    trials: PlanInt = Field(20, ge=1, le=100_000, description="Trials per target (finished ones in the study's "
                        "storage count: a resumed search runs only the rest).")
    time_budget_s: FiniteFloat | None = Field(
        None, gt=0, le=MAX_SEARCH_BUDGET_S, description="Stop starting trials after this many seconds (all targets "
        "together; at most a week); the report holds the best front so far.")
    space: dict[str, SpaceDim] = Field(
        default_factory=dict, description="Dimensions by path: 'steps[LABEL].params.PARAM' (nested params with "
        "dots) with {low, high[, log, step]} or {choices: [...]}, and 'steps[LABEL].enabled' with {choices: "
        "[true, false]} for a step that may be switched off. LABEL is the step's name, its strategy, or its "
        "index. Empty: every step's strategy offers its default space.")
    sampler: Literal["auto", "gp", "tpe", "nsga2", "random"] = Field(
        "auto", description="Optuna sampler. 'gp': Gaussian-process Bayesian optimization (constrained expected "
        "hypervolume improvement): it models how latency, size and each contract move with a ratio or an epoch "
        "count, so it extrapolates toward the strong region in tens of trials; each ask costs seconds and grows "
        "with the trials. 'tpe': multi-objective TPE, cheap to ask with thousands of trials. 'nsga2', 'random'. "
        f"'auto': gp up to {GP_MAX_TRIALS} trials per target, tpe beyond.")
    startup_trials: PlanInt | None = Field(
        None, ge=0, description="Random trials before TPE models the space (default: a quarter of trials, 3..10).")
    seed: PlanInt | None = Field(None, description="Sampler seed (default: the plan's seed).")
    isolate: bool = Field(
        False, description="Run each trial in a child process: a native crash of one recipe (a segfault in a "
        "runtime or in training) fails that trial instead of ending the search. Costs the child's start-up and "
        "the in-process sharing of torch-stage results between trials.")
    parallel: PlanInt | None = Field(
        None, ge=1, le=1024, description="With --ray: trials in flight at once (default: the cluster's timing "
        "slots: as many trials as can be timed at once, never two timings on one node). Ignored without --ray: "
        "there trials run one at a time.")
    prune_slack: FiniteFloat = Field(
        0.0, ge=0, description="Stop a trial after its torch-stage steps when its accuracy drop on the target "
        "already exceeds an accuracy contract's max_drop by more than this (in the contract's units): later "
        "steps (int8) do not win accuracy back. Large values disable pruning.")

    @field_validator("objective")
    @classmethod
    def _objectives(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one objective")
        for name in value:
            if not OBJECTIVE_PATTERN.match(name):
                raise ValueError(f"unknown objective {name!r}; accepted: accuracy, accuracy.METRIC, latency.p50, "
                                 "latency.p95, latency.p99, size, memory, macs")
        if len(set(value)) != len(value):
            raise ValueError(f"objectives repeat: {value}")
        return value

    def effective_sampler(self) -> str:
        if self.sampler != "auto":
            return self.sampler
        return "gp" if self.trials <= GP_MAX_TRIALS else "tpe"

    def effective_startup(self) -> int:
        return self.startup_trials if self.startup_trials is not None else min(10, max(3, self.trials // 4))


def space_from_raw(raw: dict[str, Any]) -> dict[str, SpaceDim]:
    """Typed dimensions from plain dicts (default spaces offered by strategies are plain data)."""
    out: dict[str, SpaceDim] = {}
    for path, dim in raw.items():
        out[path] = dim if isinstance(dim, RangeDim | ChoiceDim) else (
            ChoiceDim.model_validate(dim) if "choices" in dim else RangeDim.model_validate(dim))
    return out
