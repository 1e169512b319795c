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
from typing import Any

from edgecraft.contracts import Verdict
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


class MeasurementReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metrics: dict[str, float]
    latency_ms: LatencyReport
    size_bytes: int
    artifact: str
    cached: bool
    steps: list[dict[str, Any]] = Field(default_factory=list)


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

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def write_json_atomic(path: Path, document: dict[str, Any]) -> None:
    """Write JSON through a temporary file in the same folder, so readers never see half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(document, handle, indent=2)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
