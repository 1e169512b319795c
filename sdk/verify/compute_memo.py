"""One artifact's compute report (lineage count + the runtime's executed graph), counted once and then reused.

An artifact's count cannot change while its files do not: it is kept beside the artifact
(:mod:`edgecraft.artifact_facts`) keyed by the artifact's manifest and by everything else the count depends on
(input shapes, target, target options, threads, the feeds the executed graph is run on, the runtime's version,
this machine's CPU features, the counting code's source), and read back by later runs on the same cached
artifact: a repeated gate, and ``benchmarks/gate_cost.py``'s 160 gate runs on two artifacts (issue 25: the
count was ~0.65 s of a 3.9 s ResNet-18-sized gate run on an idle machine, seconds under load). A reused
report says so in its notes. A stored count that does not validate is ignored and counted again; a count whose
executed graph could not be read (a transient failure) is not kept.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np
from edgecraft.artifact_facts import (
    code_digest,
    fact_key,
    feeds_digest,
    load_fact,
    machine_fingerprint,
    store_fact,
)
from edgecraft.verify.compute import count_artifact
from edgecraft.verify.executed import read_executed, with_executed
from edgecraft.verify.report import ComputeReport

FACT = "compute"
REUSED_NOTE = "counted by an earlier run on this same artifact (kept in its facts/ folder; the key covers its files)"


def native_steps_only(folder: Path) -> bool:
    """True when the artifact's steps all ran at the native stage (so its graph is the baseline's ONNX graph)."""
    import json

    try:
        steps = json.loads((Path(folder) / "manifest.json").read_text())["compiled_plan"]["steps"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return bool(steps) and all(isinstance(s, dict) and s.get("stage") == "native" for s in steps)


def _code(backend: Any) -> str:
    from edgecraft.verify import compute, executed

    module = sys.modules.get(type(backend).__module__)
    folders = [Path(module.__file__).parent] if module is not None and getattr(module, "__file__", None) else []
    return code_digest([compute, executed, sys.modules[__name__]], folders)


def _versions(backend: Any) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        versions = dict(backend.runtime_versions())
    except Exception:
        versions = {"runtime_versions": "unavailable"}
    with suppress(PackageNotFoundError):
        versions["onnx"] = version("onnx")
    return versions


def compute_key(folder: Path, baseline: Path | None, *, backend: Any, target: str, options: Any, threads: int,
                feeds: Mapping[str, np.ndarray], input_shapes: Mapping[str, tuple[int, ...]] | None) -> str | None:
    """The key of ``folder``'s compute report (None: the folder has no manifest, nothing is kept)."""
    try:
        dumped = options.model_dump(mode="json") if hasattr(options, "model_dump") else repr(options)
    except Exception:
        return None
    parts = {"fact": FACT, "target": target, "backend": getattr(backend, "name", type(backend).__name__),
             "options": dumped, "threads": threads, "feeds": feeds_digest(feeds),
             "input_shapes": None if input_shapes is None else {k: list(v) for k, v in sorted(input_shapes.items())},
             "versions": _versions(backend), "machine": machine_fingerprint(), "code": _code(backend)}
    if baseline is not None:  # a native-steps artifact is counted on the baseline's graph: that is an input too
        parts["baseline"] = fact_key(baseline, {})
        if parts["baseline"] is None:
            return None
    return fact_key(folder, parts)


def _stored(folder: Path, key: str | None) -> ComputeReport | None:
    value = load_fact(folder, FACT, key)
    if not isinstance(value, dict):
        return None
    try:
        report = ComputeReport.model_validate(value)
    except Exception:  # garbage or an older shape: counted again
        return None
    return report if report.macs >= 0 and report.params >= 0 else None


def artifact_compute(folder: Path, baseline: Path | None, *, backend: Any, target: str, options: Any, threads: int,
                     feeds: Mapping[str, np.ndarray], input_shapes: Mapping[str, tuple[int, ...]] | None
                     ) -> tuple[ComputeReport | None, bool]:
    """(``folder``'s compute report, whether it was reused). ``baseline``: the baseline artifact when ``folder``
    is another one (its native steps leave no ONNX graph: the baseline's graph is then counted)."""
    fallback = baseline if baseline is not None and native_steps_only(folder) else None
    key = compute_key(folder, fallback, backend=backend, target=target, options=options, threads=threads,
                      feeds=feeds, input_shapes=input_shapes)
    stored = _stored(folder, key)
    if stored is not None:
        stored.notes.append(REUSED_NOTE)
        return stored, True
    count = count_artifact(folder, input_shapes)
    if count is None and fallback is not None:
        count = count_artifact(fallback, input_shapes)
        if count is not None:
            count.notes.append("counted on the baseline's ONNX graph: every step of this artifact ran on the "
                               "backend's own model (native stage), which keeps the MACs but hides their int8 "
                               "share from an ONNX count")
    lineage = None if count is None else ComputeReport(**count.as_dict())
    executed, why_not = read_executed(backend, folder, target, options, threads, feeds, input_shapes)
    report = with_executed(lineage, executed, why_not)
    if report is not None and why_not is None:
        store_fact(folder, FACT, key, report.model_dump(mode="json"))
    return report, False
