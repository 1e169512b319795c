"""The typed CompressionPlan: what to do to a model, for which targets, under which contracts.

Everything here is strict (unknown keys are errors) because a plan is a release gate's
specification: a misspelled ``max_drop`` silently ignored would let a regression ship.
Strategy params and target options are validated by the owning plugin's own pydantic model
(see :mod:`edgecraft.plan_schema`), so this module stays independent of any plugin.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, field_validator, model_validator

PLAN_SCHEMA_ID = "edgecraft.plan/v1"


class StrictModel(BaseModel):
    """Base for every plan model: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# ---------------------------------------------------------------- model sources
class OnnxModelSource(StrictModel):
    """An ONNX file, relative to the plan file. Only graph-level steps (e.g. quantization) apply."""

    kind: Literal["onnx"] = "onnx"
    path: str = Field(description="Path to the .onnx file, relative to the plan file.")


class TorchModelSource(StrictModel):
    """A torch module built by a factory; edgecraft exports it to ONNX itself."""

    kind: Literal["torch"] = "torch"
    factory: str = Field(
        description="'package.module:function' or 'file.py:function' (relative to the plan) returning an "
        "nn.Module with its weights loaded.")
    input_shape: list[int] = Field(min_length=1, description="Input shape with batch 1, e.g. [1, 3, 224, 224].")
    input_name: str = "input"
    output_name: str = "output"
    dtype: Literal["float32"] = "float32"
    opset: int = Field(18, ge=13, le=23, description="ONNX opset for the export.")
    exporter: Literal["dynamo", "torchscript"] = Field(
        "dynamo", description="torch.onnx exporter: 'dynamo' (torch.export based, maintained) or the legacy "
        "'torchscript' one.")

    @field_validator("factory")
    @classmethod
    def _factory_has_colon(cls, value: str) -> str:
        if ":" not in value or not all(value.split(":", 1)):
            raise ValueError("expected 'package.module:function' or 'file.py:function'")
        return value

    @field_validator("input_shape")
    @classmethod
    def _positive_dims(cls, value: list[int]) -> list[int]:
        if any(d <= 0 for d in value):
            raise ValueError("every dimension must be a positive integer")
        return value


ModelSource = Annotated[OnnxModelSource | TorchModelSource, Field(discriminator="kind")]


# ---------------------------------------------------------------- datasets
class DigitsDataset(StrictModel):
    """scikit-learn's bundled handwritten digits (1797 images, 8×8, 10 classes), offline."""

    kind: Literal["digits"] = "digits"
    split: Literal["train", "test", "all"] = "test"
    image_size: int = Field(32, ge=8, le=64, description="Images are resized (bilinear) to this side length.")
    test_fraction: float = Field(0.2, gt=0, lt=1)
    layout: Literal["image", "flat"] = Field("image", description="'image': (n, 1, size, size); "
                                             "'flat': (n, size*size) for MLPs.")
    seed: int = 0
    max_samples: int | None = Field(None, ge=1)


class NpzDataset(StrictModel):
    """A .npz file with an inputs array and (optionally) a labels array."""

    kind: Literal["npz"] = "npz"
    path: str = Field(description="Path to the .npz file, relative to the plan file.")
    inputs: str = Field("x", description="Key of the inputs array (first axis is the sample axis).")
    labels: str | None = Field("y", description="Key of the integer labels array, or null for unlabeled data.")
    max_samples: int | None = Field(None, ge=1)


class FactoryDataset(StrictModel):
    """A 'module:function' (or 'file.py:function') returning (inputs, labels_or_None) as numpy arrays."""

    kind: Literal["factory"] = "factory"
    factory: str
    max_samples: int | None = Field(None, ge=1)


DatasetSpec = Annotated[DigitsDataset | NpzDataset | FactoryDataset, Field(discriminator="kind")]


# ---------------------------------------------------------------- steps and targets
class StepSpec(StrictModel):
    """One compression step: a strategy name and that strategy's params (validated by its plugin)."""

    strategy: str = Field(description="Name of an installed strategy (see `edgecraft plugins`).")
    name: str | None = Field(None, description="Optional label used in reports; defaults to the strategy name.")
    params: dict[str, Any] | SerializeAsAny[BaseModel] = Field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.name or self.strategy


class TargetSpec(StrictModel):
    """A hardware target from an installed backend, with that backend's options for it."""

    target: str = Field(description="Name of an installed target (see `edgecraft plugins`).")
    name: str | None = Field(None, description="Label for this target entry; defaults to the target name. "
                             "Lets one plan list one target twice with different options.")
    options: dict[str, Any] | SerializeAsAny[BaseModel] = Field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.name or self.target


# ---------------------------------------------------------------- contracts
class _ContractBase(StrictModel):
    name: str | None = Field(None, description="Label in reports; generated from the bound when omitted.")
    targets: list[str] | None = Field(None, description="Target labels this contract applies to (default: all).")

    def applies_to(self, target_label: str) -> bool:
        return self.targets is None or target_label in self.targets


class AccuracyContract(_ContractBase):
    """The compressed model may lose at most ``max_drop`` of ``metric`` vs the baseline on the same target."""

    kind: Literal["accuracy"] = "accuracy"
    metric: str = Field("top1", description="A registered metric (top1, top5, agreement, cosine, ...).")
    max_drop: float = Field(ge=0, description="Largest allowed drop, in the metric's units (top1 is a "
                            "fraction: 0.01 is one accuracy point), or a fraction of the baseline if relative.")
    relative: bool = False

    def describe_bound(self) -> str:
        return f"{self.metric} drop <= {self.max_drop:g}{' (relative)' if self.relative else ''}"


class LatencyContract(_ContractBase):
    """Either a ceiling in milliseconds at a percentile, or a minimum speedup vs the baseline."""

    kind: Literal["latency"] = "latency"
    percentile: Literal["p50", "p95", "p99"] = "p50"
    max_ms: float | None = Field(None, gt=0)
    min_speedup: float | None = Field(None, gt=0)
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
    max_bytes: int | None = Field(None, gt=0)
    min_ratio: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _exactly_one_bound(self) -> SizeContract:
        if (self.max_bytes is None) == (self.min_ratio is None):
            raise ValueError("set exactly one of max_bytes or min_ratio")
        return self

    def describe_bound(self) -> str:
        if self.max_bytes is not None:
            return f"size <= {self.max_bytes} bytes"
        return f"size ratio >= {self.min_ratio:g}x"


Contract = Annotated[AccuracyContract | LatencyContract | SizeContract, Field(discriminator="kind")]


# ---------------------------------------------------------------- measurement
class EvaluationSpec(StrictModel):
    """How accuracy is measured: the same data and metrics for baseline and compressed, on the target."""

    dataset: str | None = Field(None, description="Name of a dataset in `data`; required by accuracy contracts.")
    metrics: list[str] = Field(default_factory=lambda: ["top1"])
    batch_size: int = Field(64, ge=1)


class LatencySpec(StrictModel):
    """How latency is measured: warm-up, interleaved rounds, fixed threads, the same input for both."""

    warmup: int = Field(20, ge=0)
    repeats: int = Field(200, ge=5, description="Timed calls per model, spread over `rounds` interleaved rounds.")
    rounds: int = Field(10, ge=1)
    threads: int = Field(2, ge=1, description="Intra-op threads of every runtime session.")
    batch_size: int = Field(1, ge=1)
    seed: int = 0


# ---------------------------------------------------------------- release gating
class ReferenceBounds(StrictModel):
    """How far the candidate may fall behind the last released artifact (``run --reference REPORT``).

    Percentages are relative to the reference: ``max_latency_regression_pct: 5`` lets the candidate's
    latency percentile be at most 5% above the reference's, judged on a confidence interval.
    """

    max_latency_regression_pct: float | None = Field(
        5.0, ge=0, description="Largest allowed latency increase vs the reference, in percent (null: not judged).")
    percentile: Literal["p50", "p95", "p99"] = Field("p50", description="Latency percentile compared.")
    max_accuracy_drop: float | None = Field(
        0.0, ge=0, description="Largest allowed drop of `metric` vs the reference, in the metric's units "
        "(top1: 0.01 is one accuracy point; null: not judged).")
    metric: str = Field("top1", description="Metric compared (must be in evaluation.metrics).")
    max_size_growth_pct: float | None = Field(
        0.0, ge=0, description="Largest allowed artifact size increase vs the reference, in percent (null: not "
        "judged).")
    remeasure: bool = Field(True, description="Load the reference artifact from the cache (when it is still "
                            "there) and measure it interleaved with the candidate; otherwise, or when it is gone, "
                            "compare with the numbers recorded in the reference report.")


class GateSpec(StrictModel):
    """Noise-aware verdicts: confidence intervals, adaptive repetitions, and what 'inconclusive' means."""

    confidence: float = Field(0.95, ge=0.5, lt=1.0, description="Two-sided confidence level of the bootstrap "
                              "interval a latency verdict is judged on.")
    bootstrap_resamples: int = Field(2000, ge=100, le=100_000)
    time_budget_s: float = Field(
        30.0, ge=0, description="Extra measuring time per target while a latency verdict is inconclusive: more "
        "interleaved rounds are taken until every verdict is decided or this budget is spent.")
    inconclusive: Literal["fail", "pass", "error"] = Field(
        "fail", description="What an inconclusive verdict means once the budget is spent: 'fail' (exit 1), "
        "'pass' (exit 0, flagged in reports) or 'error' (exit 4: the measurement could not decide; retry on a "
        "quieter runner).")
    reference: ReferenceBounds | None = Field(
        None, description="Bounds against a reference report (`edgecraft run --reference REPORT.json`).")


# ---------------------------------------------------------------- the plan
class CompressionPlan(StrictModel):
    """What to do to a model, for which targets, and which contracts the result must meet."""

    schema_id: Literal["edgecraft.plan/v1"] = Field(PLAN_SCHEMA_ID, alias="schema")
    name: str = "edgecraft-plan"
    model: ModelSource
    steps: list[StepSpec] = Field(default_factory=list)
    targets: list[TargetSpec] = Field(min_length=1)
    contracts: list[Contract] = Field(default_factory=list)
    data: dict[str, DatasetSpec] = Field(default_factory=dict)
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    latency: LatencySpec = Field(default_factory=LatencySpec)
    gate: GateSpec = Field(default_factory=GateSpec)
    seed: int = 0

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

    @field_validator("targets", mode="before")
    @classmethod
    def _targets_as_strings(cls, value: Any) -> Any:
        """Allow ``targets: [ort-cpu]`` as shorthand for ``[{target: ort-cpu}]``."""
        if isinstance(value, list):
            return [{"target": v} if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="after")
    def _cross_references(self) -> CompressionPlan:
        labels = [t.label for t in self.targets]
        dupes = sorted({lbl for lbl in labels if labels.count(lbl) > 1})
        if dupes:
            raise ValueError(f"target labels must be unique; repeated: {dupes} (give each entry a `name`)")
        if self.evaluation.dataset is not None and self.evaluation.dataset not in self.data:
            raise ValueError(f"evaluation.dataset {self.evaluation.dataset!r} is not in data "
                             f"(defined: {sorted(self.data) or 'none'})")
        for contract in self.contracts:
            for label in contract.targets or []:
                if label not in labels:
                    raise ValueError(f"contract targets {label!r}, which is not a target of this plan "
                                     f"(targets: {labels})")
            if isinstance(contract, AccuracyContract) and self.evaluation.dataset is None:
                raise ValueError("an accuracy contract needs evaluation.dataset (the data to measure it on)")
        return self

    def contracts_for(self, target_label: str) -> list[AccuracyContract | LatencyContract | SizeContract]:
        return [c for c in self.contracts if c.applies_to(target_label)]

    def has_accuracy_contract(self, target_label: str) -> bool:
        return any(isinstance(c, AccuracyContract) for c in self.contracts_for(target_label))
