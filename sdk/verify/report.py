"""The run report, schema ``edgecraft.report/v1``: the document CI parses. Keep its shape stable.

Top level: ``schema``, ``passed``, ``targets`` (one object per target entry with ``target``,
``passed``, ``baseline``/``compressed`` measurements, ``contracts`` and ``artifact``). Fields may be
added; none is removed or renamed within v1.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from edgecraft.verify.contracts import Verdict
from pydantic import BaseModel, ConfigDict, Field

REPORT_SCHEMA_ID = "edgecraft.report/v1"


class LatencyReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    p50: float
    p95: float
    p99: float
    mean: float
    min: float
    n: int
    samples: list[float] = Field(default_factory=list, description="Every timed call in ms, in measured order.")
    rounds: int | None = Field(None, description="Interleaved rounds the samples were taken in (equal blocks, "
                               "in order), for re-judging with the bootstrap.")


class MemoryReport(BaseModel):
    """Peak memory one model adds to a fresh process on the target's runtime (see edgecraft.verify.memory)."""

    model_config = ConfigDict(extra="forbid")

    measured: bool = Field(description="False when memory could not be measured on this target (see `reason`).")
    reason: str | None = Field(None, description="Why memory was not measured, or a caveat on how it was.")
    peak_bytes: int | None = Field(None, description="Median over the repeats of the incremental high-water mark.")
    min_bytes: int | None = None
    max_bytes: int | None = None
    samples: list[int] = Field(default_factory=list, description="One value per repeat (child process).")
    cv: float | None = Field(None, description="Coefficient of variation over the repeats.")
    process_peak_bytes: int | None = Field(None, description="Median absolute VmHWM of the model's child processes "
                                           "(the interpreter and runtime included).")
    runtime_zero_bytes: int | None = Field(None, description="Median absolute VmHWM of the runtime-only children.")
    reset: bool | None = Field(None, description="True when the high-water mark was reset after the runtime loaded.")
    runtime_stats: dict[str, Any] = Field(default_factory=dict, description="The runtime's own memory accounting, "
                                          "when its API exposes any.")
    inputs: str | None = Field(None, description="What the children ran (shapes), the batch the peak is for.")


class ExecutedComputeReport(BaseModel):
    """MACs and int8 share of the graph the runtime executes (read back from it by the backend)."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(description="What was read: the runtime, its graph and the level or precisions.")
    macs: int
    int8_macs: int
    int8_fraction: float
    by_op: dict[str, int] = Field(default_factory=dict)
    uncounted: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class ComputeReport(BaseModel):
    """Parameters and MACs at batch 1 (see edgecraft.verify.compute). ``int8_macs``/``int8_fraction`` are what
    the runtime executes when its backend reads its executed graph (``int8_source`` says which), else the
    lineage ONNX graph's."""

    model_config = ConfigDict(extra="forbid")

    params: int
    weight_bytes: int
    macs: int
    int8_macs: int
    int8_fraction: float
    by_op: dict[str, int] = Field(default_factory=dict)
    uncounted: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    int8_source: str = Field("lineage ONNX graph", description="Where the int8 share was counted.")
    lineage_int8_fraction: float | None = Field(
        None, description="The int8 share the lineage ONNX graph implies (QDQ patterns), for comparison.")
    executed: ExecutedComputeReport | None = Field(None, description="The executed graph's own count.")
    params_counted: bool = Field(True, description="False: no ONNX lineage to count parameters and weight bytes "
                                 "in (`params` and `weight_bytes` are then 0 and mean nothing).")


class MeasurementReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metrics: dict[str, float]
    latency_ms: LatencyReport
    size_bytes: int
    artifact: str
    cached: bool
    steps: list[dict[str, Any]] = Field(default_factory=list)
    #: What the runtime says about this artifact's session (precision, int8 kernels, device...).
    runtime: dict[str, Any] = Field(default_factory=dict)
    #: Why this run rebuilt the artifact although the cache had an entry (it failed verification).
    cache_rebuilt_reason: str | None = None
    #: How the torch model became the ONNX graph the backend imported: the exporter that ran (with
    #: ``exporter: auto``, TorchScript or the dynamo fallback), the attention implementation, the opset.
    export: dict[str, Any] | None = None
    #: Peak memory (only when measured: a memory contract or reference bound, or `measure.memory: true`).
    memory: MemoryReport | None = None
    #: Parameters and MACs of the artifact's ONNX graph (always counted when the artifact has one).
    compute: ComputeReport | None = None


class ReferenceMeasurement(BaseModel):
    """The reference (last released) artifact on this target, as compared in this run."""

    model_config = ConfigDict(extra="forbid")

    report: str = Field(description="Path of the reference report.")
    artifact: str
    remeasured: bool = Field(description="True: loaded and measured interleaved in this run; False: the "
                             "recorded numbers were used.")
    how: str = Field(description="Why and how it was compared.")
    metrics: dict[str, float] = Field(default_factory=dict)
    latency_ms: LatencyReport | None = None
    size_bytes: int
    memory_bytes: int | None = Field(None, description="The reference's peak memory (re-measured or recorded).")
    macs: int | None = Field(None, description="The reference's MACs (counted again or recorded).")


class TargetReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: str = Field(description="The target entry's label (its name, or the target name).")
    target_name: str
    backend: str
    passed: bool
    baseline: MeasurementReport
    compressed: MeasurementReport
    contracts: list[Verdict]
    artifact: str
    compiled_key: str
    device: dict[str, Any] = Field(default_factory=dict)
    emulated: bool = False
    ratios: dict[str, float] = Field(default_factory=dict)
    status: Literal["pass", "fail", "inconclusive"] | None = Field(
        None, description="'fail' if a verdict failed, 'inconclusive' if one stayed undecided, else 'pass'.")
    reference: ReferenceMeasurement | None = None
    extra_rounds: int = Field(0, description="Latency rounds added because a verdict was inconclusive.")
    timing: dict[str, Any] | None = Field(
        None, description="How latency was timed: calls_per_round (from round_ms and the warm-up latency), rounds, "
        "seconds of timed rounds, looks of the sequential check, rounds_discarded and discard_reasons.")
    built_on: dict[str, Any] | None = Field(None, description="The cluster node that built the artifacts "
                                            "(node id, address, host name); absent for an in-process run.")
    measured_on: dict[str, Any] | None = Field(None, description="The cluster node that loaded, evaluated and "
                                               "timed them, holding its timing slot; absent for an in-process run.")
    retries: list[dict[str, Any]] = Field(default_factory=list, description="Each time this target was sent "
                                          "again because the node working on it was lost: the attempt, the "
                                          "node and what happened.")


class TargetError(BaseModel):
    """A target that could not be built or measured: the error it stopped with (the other targets still report)."""

    model_config = ConfigDict(extra="forbid")

    target: str = Field(description="The target entry's label.")
    target_name: str
    backend: str
    error: str = Field(description="The error's class (InputError: exit 2; RuntimeFailure, PluginError: exit 3).")
    message: str
    hint: str | None = None
    exit_code: int


class IntegrationError(BaseModel):
    """A lifecycle hook of an integration that raised (``edgecraft_run_started``, ``edgecraft_target_finished``,
    ``edgecraft_report_ready``). The verdicts stand; see ``Report.integration_errors``."""

    model_config = ConfigDict(extra="forbid")

    plugin: str = Field(description="The entry point (plugin) whose hook raised.")
    distribution: str
    version: str
    hook: str
    error: str = Field(description="The exception: its type and message.")
    best_effort: bool = Field(False, description="Named in EDGECRAFT_BEST_EFFORT_PLUGINS: reported, but the exit "
                              "code stays the verdict's.")

    @classmethod
    def of(cls, failure: Any) -> IntegrationError:
        """From a :class:`edgecraft.registry.HookFailure`."""
        return cls(plugin=failure.plugin, distribution=failure.distribution, version=failure.version,
                   hook=failure.hook, error=failure.error, best_effort=failure.best_effort)


def integration_exit_code(code: int, errors: list[IntegrationError]) -> int:
    """The run's exit code once its integrations ran: a passing run (0) whose non-best-effort hook raised exits 5
    (``EXIT_INTEGRATION_FAILED``); a failing or inconclusive verdict keeps its code (it blocks the release
    already, and is the more useful answer); the errors are in the report either way."""
    from edgecraft.errors import EXIT_INTEGRATION_FAILED, EXIT_OK

    if code == EXIT_OK and any(not e.best_effort for e in errors):
        return EXIT_INTEGRATION_FAILED
    return code


class Report(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_id: str = Field(REPORT_SCHEMA_ID, alias="schema")
    passed: bool
    plan: str
    plan_name: str
    edgecraft_version: str
    created: str
    evaluation_dataset: str | None
    targets: list[TargetReport]
    errored: list[TargetError] = Field(default_factory=list, description="Targets that stopped with an error "
                                       "(not measured, no verdict); the run's exit code is the error's.")
    status: Literal["pass", "fail", "inconclusive"] | None = None
    exit_code: int | None = Field(None, description="The exit code the CLI returns for this report.")
    gate: dict[str, Any] | None = Field(None, description="The plan's gate settings (confidence, inconclusive "
                                        "policy, budget, reference bounds).")
    reference_report: str | None = None
    executor: dict[str, Any] | None = Field(None, description="Where targets were built and measured when not in "
                                            "the CLI's process: the Ray cluster's address and nodes.")
    integration_errors: list[IntegrationError] = Field(
        default_factory=list, description="Lifecycle hooks of integrations that raised. `passed` and `status` are "
        "the contracts' alone; `exit_code` is 5 when every contract passed and a hook not marked best effort "
        "raised.")

    def with_integration_errors(self, failures: list[Any]) -> Report:
        """This report with ``failures`` (HookFailures) added to its ``integration_errors`` and its exit code
        updated (:func:`integration_exit_code`)."""
        errors = [*self.integration_errors, *(IntegrationError.of(f) for f in failures)]
        code = self.exit_code if self.exit_code is not None else (0 if self.passed else 1)
        return self.model_copy(update={"integration_errors": errors, "exit_code": integration_exit_code(code, errors)})

    @classmethod
    def load(cls, path: Path) -> Report:
        """Read a report written by ``--report-json`` (InputError when it is not a v1 report)."""
        from edgecraft.errors import InputError
        from edgecraft.safe_text import bounded_repr

        try:
            document = json.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: cannot read the report: {type(exc).__name__}: {exc}") from exc
        if not isinstance(document, dict) or document.get("schema") != REPORT_SCHEMA_ID:
            got = document.get("schema") if isinstance(document, dict) else type(document).__name__
            raise InputError(f"{path}: schema {bounded_repr(got)} is not {REPORT_SCHEMA_ID!r}")
        try:
            return cls.model_validate(document)
        except Exception as exc:
            raise InputError(f"{path}: malformed {REPORT_SCHEMA_ID} report: {exc}") from exc

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def write_json_atomic(path: Path, document: dict[str, Any]) -> None:
    """Write JSON through a temporary file in the same folder, so readers never see half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(document, handle, indent=2)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes 0600; a report is for everyone who reads CI output
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
