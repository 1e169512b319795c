"""Checks ``run`` and ``gate`` make before anything is built: the run can reach a verdict, and no output
overwrites an input or another output.

Why here and not in the runner: both are about the command line (``--target``, ``--allow-no-contracts``,
the report paths), and both must fail in milliseconds, before a build or a measurement starts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from edgecraft.errors import InputError

if TYPE_CHECKING:
    from edgecraft.plan import CompressionPlan

ALLOW_NO_CONTRACTS = "--allow-no-contracts"


def require_a_verdict(plan: CompressionPlan, targets: list[str] | None, reference: Path | None,
                      allowed: bool) -> None:
    """Exit 2 when no contract (and no reference bound) applies to any target the run would measure.

    A run that judges nothing would exit 0: a plan without ``contracts``, or ``--target`` keeping only
    targets no contract names, must not read as a passed gate. ``--allow-no-contracts`` asks for a
    measuring run explicitly (its reports say no contract was judged).
    """
    if allowed:
        return
    known = [t.label for t in plan.targets]
    labels = [label for label in (targets or known) if label in known]
    if not labels:
        return  # only unknown labels: the compiler names them (exit 2)
    ref = plan.gate.reference
    if reference is not None and ref is None:
        return  # --reference without gate.reference: the runner says which bounds to add (exit 2)
    reference_bounds = reference is not None and ref is not None and any(
        bound is not None for bound in (ref.max_latency_regression_pct, ref.max_accuracy_drop,
                                        ref.max_size_growth_pct, ref.max_memory_growth_pct, ref.max_macs_growth_pct))
    if reference_bounds or any(plan.contracts_for(label) for label in labels):
        return
    which = "the plan has no contracts" if not plan.contracts else (
        f"no contract applies to the targets this run measures ({', '.join(map(repr, labels))}; contracts name "
        f"{sorted({t for c in plan.contracts for t in (c.targets or [])})})")
    raise InputError(f"nothing to judge: {which}, so the run could only exit 0 without a verdict. Add a contract "
                     f"(e.g. contracts: [{{kind: size, min_ratio: 1.0}}]), choose other --target labels, or pass "
                     f"{ALLOW_NO_CONTRACTS} to measure without judging")


def refuse_clobbering(inputs: dict[str, Path | None], outputs: dict[str, Path | None]) -> None:
    """Exit 2 when an output path is an input or another output (resolved, through symlinks and hard links).

    ``--report-json`` equal to ``--reference`` would replace the released reference by the candidate's
    report; equal to the plan file, it destroys the plan; two outputs on one file leave only the last.
    """
    seen: dict[tuple[str, object], str] = {}
    for role, path in inputs.items():
        if path is not None:
            for key in _identities(path):
                seen.setdefault(key, role)
    for role, path in outputs.items():
        if path is None:
            continue
        keys = _identities(path)
        for key in keys:
            if key in seen:
                other = seen[key]
                kind = "an input" if other in inputs else "another output"
                raise InputError(f"{role} {path} is the same file as {other} ({kind}): writing it would destroy "
                                 f"{'that input' if other in inputs else 'the other report'}; choose another path")
        for key in keys:
            seen[key] = role


def _identities(path: Path) -> list[tuple[str, object]]:
    """The resolved path (symlinks followed) and, for an existing file, its (device, inode): a hard link or a
    bind mount is the same file under another name."""
    keys: list[tuple[str, object]] = [("path", os.path.realpath(path))]
    try:
        st = os.stat(path)
        keys.append(("inode", (st.st_dev, st.st_ino)))
    except OSError:
        pass
    return keys


def plan_inputs(plan: CompressionPlan, base_dir: Path) -> dict[str, Path | None]:
    """The files a plan reads that an output could name: every ``path`` (and a factory's file) of the model
    source and the datasets, relative to the plan's folder."""
    found: dict[str, Path | None] = {}
    sections = {"model": plan.model.model_dump(), **{f"data.{k}": v.model_dump() for k, v in plan.data.items()}}
    for where, params in sections.items():
        for key in ("path", "factory"):
            value = params.get(key)
            if isinstance(value, str) and value:
                file = value.rsplit(":", 1)[0] if key == "factory" and ":" in value else value
                found[f"{where}.{key}"] = base_dir / file
    return found
