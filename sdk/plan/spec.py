"""The core's sections of a plan (contracts, evaluation, latency, gate, measure, placement) and what the plan
as written (:class:`~edgecraft.plan.raw.RawPlan`) and the bound plan (:class:`~edgecraft.plan.bound.CompressionPlan`)
share: the step and target entries and the plan's cross-references.

Everything here is strict and frozen (:class:`~edgecraft.plan.sections.StrictModel`). The sections a plugin
owns (a step's params, a target's options, the model source, the datasets) are typed by the two subclasses:
plain data in the raw plan, the plugins' own models in the bound one (see :mod:`edgecraft.plan.binding`), so
this module stays independent of any plugin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from edgecraft.plan.numbers import (
    MAX_CALLS,
    MAX_GATE_BUDGET_S,
    MAX_PLACEMENT_TIMEOUT_S,
    MAX_ROUNDS,
    FiniteFloat,
    Label,
    PlanInt,
)
from edgecraft.plan.search import SearchSpec
from edgecraft.plan.sections import StrictModel
from pydantic import ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

PLAN_SCHEMA_ID = "edgecraft.plan/v1"


# ---------------------------------------------------------------- steps and targets
class StepBase(StrictModel):
    """One compression step: a strategy name and that strategy's params (typed by the raw and the bound step)."""

    strategy: Label = Field(description="Name of an installed strategy (see `edgecraft plugins`).")
    name: Label | None = Field(None, description="Optional label used in reports; defaults to the strategy name.")
    params: Any

    @property
    def label(self) -> str:
        return self.name or self.strategy


#: The Ray custom resource every measuring node offers once (``--resources '{"edgecraft_timing_slot": 1}'``):
#: a timing task holds it, so no two latency measurements ever share a machine (see edgecraft.execute).
TIMING_SLOT = "edgecraft_timing_slot"


class Placement(StrictModel):
    """Where a target's work may run when the run goes to a cluster (``edgecraft run --ray ADDRESS``).

    Ignored by the in-process executor (the default): there everything runs in the CLI's process. Not part
    of the compiled plan's hash: where an artifact is built does not change what is built.
    """

    resources: dict[str, FiniteFloat] = Field(
        default_factory=dict, description="Ray custom resources the measuring node must offer, e.g. "
        "{\"arch:aarch64\": 1} for a node started with `ray start --resources '{\"arch:aarch64\": 1, "
        "\"edgecraft_timing_slot\": 1}'`. The timing slot is always added.")
    build_resources: dict[str, FiniteFloat] = Field(
        default_factory=dict, description="Ray custom resources the building node must offer (default: none, "
        "any node with the target's toolchain builds).")
    timeout_s: FiniteFloat = Field(
        600.0, gt=0, le=MAX_PLACEMENT_TIMEOUT_S,
        description="How long to wait for a node that satisfies the placement (nodes may still be "
        "joining) before the target fails with exit 3 naming the placement.")
    max_retries: PlanInt = Field(
        2, ge=0, le=10, description="How many times a target is sent again, to another eligible node, when the "
        "node working on it is lost (the report lists each retry).")
    cache_dir: str | None = Field(
        None, description="A cache folder every node mounts at this same path (NFS or similar): artifacts are "
        "built into it and read from it. Default: artifacts move through Ray's object store.")

    @field_validator("resources", "build_resources")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        for name, amount in value.items():
            if not name or amount <= 0:
                raise ValueError(f"resource {name!r}: amounts must be positive numbers")
            if name in ("CPU", "GPU", "memory", "object_store_memory"):
                raise ValueError(f"{name!r} is a Ray built-in resource; placement names custom resources a "
                                 "node was started with (e.g. \"arch:aarch64\")")
        return value


class TargetBase(StrictModel):
    """A hardware target from an installed backend, with that backend's options for it (typed by the raw and
    the bound target entry)."""

    target: Label = Field(description="Name of an installed target (see `edgecraft plugins`).")
    name: Label | None = Field(None, description="Label for this target entry; defaults to the target name. "
                             "Lets one plan list one target twice with different options.")
    options: Any
    placement: Placement | None = Field(
        None, description="Where this target runs on a cluster (`edgecraft run --ray`): the node resources it "
        "needs, how long to wait for them, retries. Ignored when the run is in-process.")

    @property
    def label(self) -> str:
        return self.name or self.target


# ---------------------------------------------------------------- contracts
class _ContractBase(StrictModel):
    name: Label | None = Field(None, description="Label in reports; generated from the bound when omitted.")
    targets: list[Label] | None = Field(None, description="Target labels this contract applies to (default: all).")

    def applies_to(self, target_label: str) -> bool:
        return self.targets is None or target_label in self.targets


class AccuracyContract(_ContractBase):
    """The compressed model may lose at most ``max_drop`` of ``metric`` vs the baseline on the same target."""

    kind: Literal["accuracy"] = "accuracy"
    metric: str = Field("top1", description="A registered metric (top1, top5, agreement, cosine, ...).")
    max_drop: FiniteFloat = Field(ge=0, description="Largest allowed drop, in the metric's units (top1 is a "
                            "fraction: 0.01 is one accuracy point), or a fraction of the baseline if relative.")
    relative: bool = False

    def describe_bound(self) -> str:
        return f"{self.metric} drop <= {self.max_drop:g}{' (relative)' if self.relative else ''}"


class LatencyContract(_ContractBase):
    """Either a ceiling in milliseconds at a percentile, or a minimum speedup vs the baseline."""

    kind: Literal["latency"] = "latency"
    percentile: Literal["p50", "p95", "p99"] = "p50"
    max_ms: FiniteFloat | None = Field(None, gt=0)
    min_speedup: FiniteFloat | None = Field(None, gt=0)
    allow_emulated: bool = Field(False, description="Accept a latency verdict measured on an emulated device "
                                 "(it says nothing about real hardware; the verdict is labelled emulated).")

    @model_validator(mode="after")
    def _exactly_one_bound(self) -> LatencyContract:
        if (self.max_ms is None) == (self.min_speedup is None):
            raise ValueError("set exactly one of max_ms or min_speedup")
        return self

    def describe_bound(self) -> str:
        if self.max_ms is not None:
            return f"{self.percentile} <= {self.max_ms:g} ms"
        return f"{self.percentile} speedup >= {self.min_speedup:g}x"


class SizeContract(_ContractBase):
    """Either a ceiling in bytes for the artifact, or a minimum baseline/compressed size ratio."""

    kind: Literal["size"] = "size"
    max_bytes: PlanInt | None = Field(None, gt=0)
    min_ratio: FiniteFloat | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _exactly_one_bound(self) -> SizeContract:
        if (self.max_bytes is None) == (self.min_ratio is None):
            raise ValueError("set exactly one of max_bytes or min_ratio")
        return self

    def describe_bound(self) -> str:
        if self.max_bytes is not None:
            return f"size <= {self.max_bytes} bytes"
        return f"size ratio >= {self.min_ratio:g}x"


class MemoryContract(_ContractBase):
    """Either a ceiling on the compressed model's peak memory, or a minimum baseline/compressed peak-memory ratio.

    Peak memory is what loading the artifact and running a warmed inference add to a fresh process's
    high-water mark on the target's own runtime (the runtime already loaded is the zero); see
    :mod:`edgecraft.verify.memory`. Judged on the range over the repeated child processes.
    """

    kind: Literal["memory"] = "memory"
    max_bytes: PlanInt | None = Field(None, gt=0, description="Largest allowed peak memory of the compressed model.")
    min_ratio: FiniteFloat | None = Field(None, gt=0,
        description="Smallest allowed baseline/compressed peak-memory ratio.")

    @model_validator(mode="after")
    def _exactly_one_bound(self) -> MemoryContract:
        if (self.max_bytes is None) == (self.min_ratio is None):
            raise ValueError("set exactly one of max_bytes or min_ratio")
        return self

    def describe_bound(self) -> str:
        if self.max_bytes is not None:
            return f"peak memory <= {self.max_bytes} bytes"
        return f"peak memory ratio >= {self.min_ratio:g}x"


class ComputeContract(_ContractBase):
    """Either a ceiling on the compressed model's multiply-accumulates (batch 1), or a minimum baseline/compressed
    MAC ratio. MACs are counted on the artifact's ONNX graph (see :mod:`edgecraft.verify.compute`)."""

    kind: Literal["compute"] = "compute"
    max_macs: PlanInt | None = Field(None, gt=0, description="Largest allowed MACs per sample of the compressed model.")
    min_ratio: FiniteFloat | None = Field(None, gt=0, description="Smallest allowed baseline/compressed MAC ratio.")

    @model_validator(mode="after")
    def _exactly_one_bound(self) -> ComputeContract:
        if (self.max_macs is None) == (self.min_ratio is None):
            raise ValueError("set exactly one of max_macs or min_ratio")
        return self

    def describe_bound(self) -> str:
        if self.max_macs is not None:
            return f"MACs <= {self.max_macs}"
        return f"MAC ratio >= {self.min_ratio:g}x"


#: The kinds the core defines (the ``contracts`` core plugin judges them); any other ``kind:`` is a plugin's.
BUILTIN_CONTRACT_KINDS = ("accuracy", "latency", "size", "memory", "compute")
#: The union tag of a contract whose kind a plugin registers.
PLUGIN_CONTRACT_TAG = "plugin"


class PluginContract(_ContractBase):
    """A contract of a kind a plugin registers (``edgecraft_register_contract_kinds``), as written.

    The core cannot know its fields, so it keeps them (``extra="allow"``) until
    :func:`~edgecraft.plan.binding.bind_plan` validates them with the kind's own ``model``: an unknown kind or a
    bad field is a plan problem naming ``contracts[i]``, like any built-in kind's.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    kind: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$", max_length=64,
                      description="A contract kind a plugin registers (`edgecraft list` shows the installed kinds).")

    def describe_bound(self) -> str:
        return ", ".join(f"{key}={value!r}" for key, value in (self.model_extra or {}).items()) or self.kind


def _contract_tag(value: Any) -> str | None:
    """The union member a contract validates as: its built-in kind, else the plugin member (None: no kind)."""
    kind = value.get("kind") if isinstance(value, Mapping) else getattr(value, "kind", None)
    if not isinstance(kind, str):
        return None
    return kind if kind in BUILTIN_CONTRACT_KINDS else PLUGIN_CONTRACT_TAG


Contract = Annotated[
    Annotated[AccuracyContract, Tag("accuracy")] | Annotated[LatencyContract, Tag("latency")]
    | Annotated[SizeContract, Tag("size")] | Annotated[MemoryContract, Tag("memory")]
    | Annotated[ComputeContract, Tag("compute")] | Annotated[PluginContract, Tag(PLUGIN_CONTRACT_TAG)],
    Discriminator(_contract_tag),
]
AnyContract = AccuracyContract | LatencyContract | SizeContract | MemoryContract | ComputeContract | PluginContract


def applies_to(contract: Any, target_label: str) -> bool:
    """Whether ``contract`` judges target ``target_label`` (a plugin kind's model may have no ``targets``)."""
    targets = getattr(contract, "targets", None)
    return targets is None or target_label in targets


# ---------------------------------------------------------------- measurement
class EvaluationSpec(StrictModel):
    """How accuracy is measured: the same data and metrics for baseline and compressed, on the target."""

    dataset: str | None = Field(None, description="Name of a dataset in `data`; required by accuracy contracts.")
    metrics: list[str] = Field(default_factory=lambda: ["top1"])
    output: str | None = Field(None, description="The model output top1/agreement/cosine read (default: the first).")
    mask_input: str | None = Field(
        None, description="The model input holding the attention mask (1 = token, 0 = padding), e.g. "
        "attention_mask: masked_cosine and pooled_cosine read it so padding positions do not count.")
    allow_non_finite: bool = Field(False, description="Accept NaN/Inf in the model's outputs (only for a metric "
                                   "that expects them); otherwise they are an error naming the output.")
    batch_size: PlanInt = Field(64, ge=1)


class LatencySpec(StrictModel):
    """How latency is measured: warm-up, interleaved rounds sized by time, fixed threads, the same input for all.

    Why a time per round and not a fixed repeat count: a fixed count is either too few calls for a
    0.3 ms model (each block is over in 3 ms, so one scheduler hiccup is its whole median) or minutes
    of timing for a 25 ms one. Like ``timeit.autorange``, every model runs ``calls_per_round`` calls
    per round, derived from the warm-up's latency so that the slowest model's block lasts about
    ``round_ms``, clamped to ``[min_calls, max_calls]``.
    """

    warmup: PlanInt = Field(20, ge=0, le=MAX_CALLS,
        description="Untimed calls per model before timing; their times also set the "
                        "number of calls per round.")
    round_ms: FiniteFloat = Field(50.0, gt=0, le=60_000, description="Target duration of one model's block of calls in "
                            "a round, in ms: calls per round = round_ms / the slowest model's latency, clamped to "
                            "[min_calls, max_calls].")
    min_calls: PlanInt = Field(5, ge=1, le=MAX_CALLS,
        description="Fewest timed calls per model per round (a slow model's block "
                           "still has a low quantile to judge on).")
    max_calls: PlanInt = Field(1000, ge=1, le=MAX_CALLS, description="Most timed calls per model per round.")
    repeats: PlanInt | None = Field(None, ge=5, le=MAX_CALLS,
        description="Deprecated (use round_ms): when set, caps the timed calls "
                                "per model per round at repeats // rounds, so an old plan never times more than it "
                                "did; a model too slow to make that many calls in round_ms makes fewer.")
    rounds: PlanInt = Field(10, ge=1, le=MAX_ROUNDS,
        description="Interleaved rounds measured before the first verdict; more are "
                        "taken while a verdict is inconclusive (see gate.time_budget_s).")
    threads: PlanInt = Field(2, ge=1, description="Intra-op threads of every runtime session. On a shared runner keep "
                         "it below the core count (see docs/release-gating.md, 'Noise-aware latency verdicts').")
    statistic: Literal["auto", "low", "median", "cpu"] = Field(
        "auto", description="Per-round statistic of a p50 ratio (speedup, regression vs a reference): 'low' compares "
        "the two blocks' lower quintiles of wall time (a busy neighbour can only add time to a call), 'median' their "
        "medians, 'cpu' the process CPU time per call (immune to being descheduled; with several threads a proxy "
        "that assumes both models parallelize alike). 'auto': 'low', or 'cpu' when the wall clock was visibly "
        "contended (most blocks got well under the model's best CPU share); the verdict says which.")
    batch_size: PlanInt = Field(1, ge=1)
    seed: PlanInt = 0

    @model_validator(mode="after")
    def _calls_range(self) -> LatencySpec:
        if self.min_calls > self.max_calls:
            raise ValueError(f"min_calls ({self.min_calls}) must not exceed max_calls ({self.max_calls})")
        return self


class MeasureSpec(StrictModel):
    """Optional measurements that cost time. Compute (params, MACs) is cheap and always counted."""

    memory: bool = Field(False, description="Measure peak memory of the baseline and compressed artifacts on every "
                         "target (a few seconds per target). Also switched on by a memory contract or "
                         "gate.reference.max_memory_growth_pct.")
    memory_repeats: PlanInt = Field(3, ge=1, le=20, description="Fresh child processes per model (and for the "
                                "runtime-only zero), taken in alternating order; the verdict is judged on their "
                                "range. One more round is taken per model when a verdict is inconclusive.")


# ---------------------------------------------------------------- release gating
class ReferenceBounds(StrictModel):
    """How far the candidate may fall behind the last released artifact (``run --reference REPORT``).

    Percentages are relative to the reference: ``max_latency_regression_pct: 5`` lets the candidate's
    latency percentile be at most 5% above the reference's, judged on a confidence interval.
    """

    max_latency_regression_pct: FiniteFloat | None = Field(
        5.0, ge=0, description="Largest allowed latency increase vs the reference, in percent (null: not judged).")
    percentile: Literal["p50", "p95", "p99"] = Field("p50", description="Latency percentile compared.")
    max_accuracy_drop: FiniteFloat | None = Field(
        0.0, ge=0, description="Largest allowed drop of `metric` vs the reference, in the metric's units "
        "(top1: 0.01 is one accuracy point; null: not judged).")
    metric: str = Field("top1", description="Metric compared (must be in evaluation.metrics).")
    max_size_growth_pct: FiniteFloat | None = Field(
        0.0, ge=0, description="Largest allowed artifact size increase vs the reference, in percent (null: not "
        "judged).")
    max_memory_growth_pct: FiniteFloat | None = Field(
        None, ge=0, description="Largest allowed peak-memory increase vs the reference, in percent (null: not "
        "judged; setting it measures memory).")
    max_macs_growth_pct: FiniteFloat | None = Field(
        None, ge=0, description="Largest allowed MAC increase vs the reference, in percent (null: not judged).")
    remeasure: bool = Field(True, description="Load the reference artifact from the cache (when it is still "
                            "there) and measure it interleaved with the candidate; otherwise, or when it is gone, "
                            "compare with the numbers recorded in the reference report.")


class GateSpec(StrictModel):
    """Noise-aware verdicts: confidence intervals, adaptive repetitions, and what 'inconclusive' means."""

    confidence: FiniteFloat = Field(0.95, ge=0.5, lt=1.0, description="Two-sided confidence level of a latency verdict "
                              "over all its looks: look k is judged at a stricter level (alpha * 6 / (pi^2 k^2)), so "
                              "re-judging after more rounds does not inflate the false-decision rate.")
    bootstrap_resamples: PlanInt = Field(2000, ge=100, le=100_000)
    time_budget_s: FiniteFloat = Field(
        30.0, ge=0, le=MAX_GATE_BUDGET_S,
        description="Extra measuring time per target while a latency verdict is inconclusive: more "
        "interleaved rounds are taken (the verdicts re-judged after each batch, at a stricter confidence per look) "
        "until every verdict is decided or the next round would not fit in this budget; the clock is checked "
        "before every round, so it is overrun by at most one round. Finite, at most 3600 (an hour).")
    inconclusive: Literal["fail", "pass", "error"] = Field(
        "fail", description="What an inconclusive verdict means once the budget is spent: 'fail' (exit 1), "
        "'pass' (exit 0, flagged in reports) or 'error' (exit 4: the measurement could not decide; retry on a "
        "quieter runner).")
    reference: ReferenceBounds | None = Field(
        None, description="Bounds against a reference report (`edgecraft run --reference REPORT.json`).")


# ---------------------------------------------------------------- the plan
class PlanBase(StrictModel):
    """What to do to a model, for which targets, and which contracts the result must meet.

    The fields and checks a plan has whether it is as written (:class:`~edgecraft.plan.raw.RawPlan`) or bound
    (:class:`~edgecraft.plan.bound.CompressionPlan`); the two type ``model``, ``steps``, ``targets`` and
    ``data``, the sections plugins own.
    """

    schema_id: Literal["edgecraft.plan/v1"] = Field(PLAN_SCHEMA_ID, alias="schema")
    name: Label = "edgecraft-plan"
    model: Any
    steps: Sequence[StepBase]
    targets: Sequence[TargetBase]
    contracts: Sequence[Any] = Field(default_factory=list)
    data: Mapping[str, Any]
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    latency: LatencySpec = Field(default_factory=LatencySpec)
    gate: GateSpec = Field(default_factory=GateSpec)
    measure: MeasureSpec = Field(default_factory=MeasureSpec)
    search: SearchSpec | None = Field(None, description="What `edgecraft search` explores and optimizes (ignored by "
                                      "`run`): objectives, trials, time budget, and the space of step params.")
    seed: PlanInt = 0

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("targets", mode="before")
    @classmethod
    def _targets_as_strings(cls, value: Any) -> Any:
        """Allow ``targets: [ort-cpu]`` as shorthand for ``[{target: ort-cpu}]``."""
        if isinstance(value, list):
            return [{"target": v} if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="after")
    def _cross_references(self) -> PlanBase:
        labels = [t.label for t in self.targets]
        dupes = sorted({lbl for lbl in labels if labels.count(lbl) > 1})
        if dupes:
            raise ValueError(f"target labels must be unique; repeated: {dupes} (give each entry a `name`)")
        if self.evaluation.dataset is not None and self.evaluation.dataset not in self.data:
            raise ValueError(f"evaluation.dataset {self.evaluation.dataset!r} is not in data "
                             f"(defined: {sorted(self.data) or 'none'})")
        for contract in self.contracts:
            for label in getattr(contract, "targets", None) or []:
                if label not in labels:
                    raise ValueError(f"contract targets {label!r}, which is not a target of this plan "
                                     f"(targets: {labels})")
            if isinstance(contract, AccuracyContract) and self.evaluation.dataset is None:
                raise ValueError("an accuracy contract needs evaluation.dataset (the data to measure it on)")
        return self

    def contracts_for(self, target_label: str) -> list[Any]:
        """The contracts judged on ``target_label``: built-in models and plugin kinds' models alike."""
        return [c for c in self.contracts if applies_to(c, target_label)]

    def measures_memory(self, target_label: str) -> bool:
        """Whether memory is measured on this target: asked for, or needed by a contract or a reference bound."""
        ref = self.gate.reference
        return (self.measure.memory or any(isinstance(c, MemoryContract) for c in self.contracts_for(target_label))
                or (ref is not None and ref.max_memory_growth_pct is not None))

    def has_accuracy_contract(self, target_label: str) -> bool:
        return any(isinstance(c, AccuracyContract) for c in self.contracts_for(target_label))
