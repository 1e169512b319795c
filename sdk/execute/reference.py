"""The reference side of a target (``edgecraft run --reference REPORT.json``): its artifact loaded again when
it is still in the cache (and the plan asks to), else its recorded numbers; and the verdicts of the
plan's ``gate.reference`` bounds that are judged while the sessions are open.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from edgecraft.assembly.artifact_io import ArtifactIO
from edgecraft.assembly.artifacts import MANIFEST, Artifact
from edgecraft.assembly.cache_verify import read_manifest
from edgecraft.backend import Session
from edgecraft.compile.compiler import CompiledPlan
from edgecraft.errors import InputError
from edgecraft.plan import CompressionPlan, ReferenceBounds
from edgecraft.registry import Registry
from edgecraft.verify.contracts import Verdict
from edgecraft.verify.gate import (
    ReferenceReport,
    ReferenceSide,
    reference_accuracy_verdict,
    reference_latency_verdict,
    reference_size_verdict,
)
from edgecraft.verify.measure import InterleavedTimer


def already_judged(verdict: Verdict) -> Verdict:
    """A judge for a verdict that more latency rounds cannot change."""
    return verdict


def compiled_bounds(plan: CompressionPlan) -> ReferenceBounds:
    """The plan's ``gate.reference`` bounds; an InputError with an example when ``--reference`` has none."""
    if plan.gate.reference is None:
        raise InputError("--reference needs bounds in the plan: add a gate.reference section, e.g. "
                         "gate: {reference: {max_latency_regression_pct: 5, max_accuracy_drop: 0.005, "
                         "max_size_growth_pct: 1}}")
    return plan.gate.reference


def reference_side(ref_entry: dict[str, Any], reference: ReferenceReport, plan: CompressionPlan,
                   artifact_io: ArtifactIO, compiled: CompiledPlan,
                   base_key: str) -> tuple[ReferenceSide, Session | None]:
    """Load the reference artifact when it is still there (and the plan asks to), else use the recorded numbers."""
    bounds = compiled_bounds(plan)
    artifact = str(ref_entry.get("artifact") or ref_entry["compressed"].get("artifact", ""))
    recorded_base = Path(str(ref_entry["baseline"].get("artifact", ""))).name
    same_baseline = recorded_base == base_key
    recorded = {"metrics": {k: float(v) for k, v in ref_entry["compressed"].get("metrics", {}).items()},
                "size_bytes": int(ref_entry["compressed"].get("size_bytes", 0))}

    def fallback(reason: str) -> tuple[ReferenceSide, None]:
        return ReferenceSide(ref_entry, False, artifact, reason, recorded["metrics"], recorded["size_bytes"],
                             same_baseline), None

    if not bounds.remeasure:
        return fallback("gate.reference.remeasure is false")
    folder = Path(artifact)
    if not artifact or not (folder / MANIFEST).is_file():
        return fallback(f"the reference artifact {artifact or '(none recorded)'} is no longer in the cache")
    manifest, rejected = read_manifest(folder)  # verified like any cache entry: never load a damaged library
    if manifest is None:
        return fallback(f"the reference artifact failed verification: {rejected}")
    ref_art = Artifact(folder, manifest)
    built_for = ref_art.manifest.get("compiled_plan", {}).get("target")
    if built_for != compiled.target:
        raise InputError(f"--reference {reference.path}: the reference artifact {folder} was built for target "
                         f"{built_for!r}, not {compiled.target!r}")
    session = artifact_io.load(folder)
    side = ReferenceSide(ref_entry, True, str(folder), "re-measured", recorded["metrics"], ref_art.size_bytes,
                         same_baseline)
    return side, session


def reference_judges(plan: CompressionPlan, registry: Registry, side: ReferenceSide, timer: InterleavedTimer, *,
                     emulated: bool, has_dataset: bool, metrics: dict[str, float],
                     size_bytes: int) -> list[Callable[[], Verdict]]:
    """The judges of the ``gate.reference`` bounds on latency, accuracy and size (memory and MACs are judged
    with the resources, after the sessions are closed)."""
    bounds, gate = compiled_bounds(plan), plan.gate
    judges: list[Callable[[], Verdict]] = []
    if bounds.max_latency_regression_pct is not None:  # judged again after every look
        judges.append(partial(reference_latency_verdict, bounds, gate, timer, side, emulated=emulated,
                              seed=plan.latency.seed))
    if bounds.max_accuracy_drop is not None:
        if not has_dataset:
            raise InputError("gate.reference.max_accuracy_drop needs evaluation.dataset (or set it to null)")
        accuracy = reference_accuracy_verdict(bounds, registry.metric(bounds.metric).higher_is_better, side, metrics)
        judges.append(partial(already_judged, accuracy))
    if bounds.max_size_growth_pct is not None:
        judges.append(partial(already_judged, reference_size_verdict(bounds, side, size_bytes)))
    return judges
