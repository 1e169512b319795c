"""The two Ray tasks of a target (``edgecraft run PLAN --ray ADDRESS``): what runs on the cluster's nodes.

**Build task** (``num_cpus=1`` plus ``placement.build_resources``): recompiles the target on its node
(the node must produce the CLI's compiled-plan hash: same edgecraft, plugins and runtime versions,
otherwise the target fails naming the node and the versions that differ), builds the baseline and
compressed artifacts in the node's own cache, and returns them packed (tar) as a second return value,
which stays in Ray's object store: the CLI only reads the small first value and passes the reference on,
so artifacts travel from the building node to the measuring node without passing through the CLI.
With ``placement.cache_dir`` (a folder every node mounts at one path) nothing is packed: both tasks use
that cache.

**Measure task** (``num_cpus=latency.threads`` plus ``edgecraft_timing_slot: 1`` plus
``placement.resources``): checks the node has the backend's runtime and the target's device (the same
check ``compile`` does: a node lacking them fails the target with exit 3, naming the node and what is
missing, before anything is timed), unpacks and verifies the artifacts (sha256 of every file against
the manifest) into a cache that refuses to build, and runs the very code of the in-process run
(:func:`edgecraft.execute.target.run_target`): load, evaluate, time the baseline and the candidate
interleaved on this one node, and judge, including the extra rounds an undecided verdict asks for,
which need the live sessions.

Both return plain data (a failure as a dict naming the node), never raise: the CLI side
(:mod:`edgecraft.execute.ray_executor`) turns them into reports or errors.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import tarfile
import tempfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecraft import __version__
from edgecraft.assembly.artifacts import ArtifactCache
from edgecraft.compile.checks import RunInputs, compile_all, prepare
from edgecraft.compile.compiler import CompiledPlan
from edgecraft.errors import EXIT_PLUGIN_FAILURE, EdgecraftError, InputError, RuntimeFailure
from edgecraft.execute.target import TargetServices, run_target
from edgecraft.plan.loading import validate_plan
from edgecraft.progress import NullProgress
from edgecraft.registry import build_registry

RAY_INSTALL = "pip install 'edgecraft[ray]'"


def ray_module() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise InputError("--ray needs the ray extra (Ray is not installed)", hint=RAY_INSTALL) from exc
    return ray


@dataclass(frozen=True)
class TargetWork:
    """Everything a node needs to redo the compile of one target and work on it (plain, picklable data)."""

    plan: dict[str, Any]
    plan_source: str
    base_dir: str
    label: str
    key: str
    baseline_key: str
    versions: dict[str, str]
    edgecraft_version: str
    plugins: str | None
    disabled_plugins: str | None
    shared_cache: str | None
    reference: Any = None


def plan_for_nodes(plan: Any) -> dict[str, Any]:
    """The plan as the nodes re-validate it: only what the plan set, so every default is applied again there
    rather than written out. Written out, a default can mean something else: an npz dataset's default labels
    key ``y``, absent from an unlabeled file, became an explicit ``labels: y`` and the node refused the file."""
    return dict(plan.model_dump(mode="json", by_alias=True, exclude_unset=True))


def node_identity() -> dict[str, Any]:
    """The node this code runs on, as the report names it."""
    ray = ray_module()
    return {"node_id": ray.get_runtime_context().get_node_id(), "address": ray.util.get_node_ip_address(),
            "hostname": socket.gethostname(), "pid": os.getpid()}


def describe_node(node: dict[str, Any]) -> str:
    return f"node {node.get('node_id', '?')[:12]} ({node.get('address', '?')}, {node.get('hostname', '?')})"


def _prepare_on_node(work: TargetWork, node: dict[str, Any], *, measuring: bool = False) -> tuple[RunInputs,
                                                                                                 CompiledPlan]:
    """Recompile the target here. Anything this node lacks is a RuntimeFailure naming it (exit 3).

    ``measuring``: this node only measures artifacts built elsewhere (sha256-verified, never rebuilt here), so
    only the code that measures and judges must be the CLI's (edgecraft and every plugin); the build tools may
    differ (an ARM board has its own Python patch release, no torch, its own runtime build). The differences
    go in ``node["versions_differing_from_cli"]`` for the report, and the CLI's compiled plan is used as is.
    """
    where = describe_node(node)
    if __version__ != work.edgecraft_version:
        raise RuntimeFailure(f"{where} has edgecraft {__version__}, the CLI {work.edgecraft_version}",
                             hint="install the same edgecraft (and extras) on every node")
    plugins = [p for p in (work.plugins or "").split(",") if p] or None
    disabled = [p for p in (work.disabled_plugins or "").split(",") if p] or None
    registry = build_registry(plugins=plugins, disable=disabled)
    try:
        plan = validate_plan(work.plan, registry, source=work.plan_source)
        run = prepare(plan, registry, Path(work.base_dir))
        compiled = compile_all(run, [work.label])[work.label]
    except InputError as exc:
        raise RuntimeFailure(f"{where} cannot work on target {work.label!r}: {exc.message}", hint=exc.hint) from exc
    differ = sorted(k for k in set(compiled.versions) | set(work.versions)
                    if compiled.versions.get(k) != work.versions.get(k))
    if measuring and compiled.key() != work.key and not [k for k in differ if k in _MEASURING_CODE or
                                                        k.startswith("plugin:")]:
        same = compiled.model_copy(update={"versions": work.versions})
        if same.key() == work.key:
            node["versions_differing_from_cli"] = {k: {"node": compiled.versions.get(k, "missing"),
                                                       "cli": work.versions.get(k, "missing")} for k in differ}
            return run, same
    if compiled.key() != work.key:
        detail = ", ".join(f"{k}: {compiled.versions.get(k, 'missing')} here, {work.versions.get(k, 'missing')} "
                           "on the CLI" for k in differ) or "the compiled plan differs (model or data files?)"
        raise RuntimeFailure(f"{where} would build something else for target {work.label!r}: {detail}",
                             hint="every node needs the same edgecraft, plugins and runtime versions as the CLI")
    return run, compiled


#: Version keys of a compiled plan that name the code measuring and judging (with every ``plugin:*``).
_MEASURING_CODE = frozenset({"edgecraft"})


def _pack(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(str(folder), arcname=".")
    return buffer.getvalue()


def _unpack(blob: bytes, out: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(out, filter="data")  # "data": no absolute paths, links out of the folder, devices
            return
        # Python < 3.11.4 (Debian 12's 3.11.2 on ARM boards) has no extraction filters: the same rules by hand
        # (artifacts are plain files and folders).
        for member in tar.getmembers():
            parts = Path(member.name).parts
            if not (member.isfile() or member.isdir()) or Path(member.name).is_absolute() or ".." in parts:
                raise RuntimeFailure(f"refusing to unpack {member.name!r} from a shipped artifact (only plain files "
                                     "and folders inside it are accepted)")
        tar.extractall(out)  # every member checked above


class ShippedCache(ArtifactCache):
    """The measuring node's cache: only what was built elsewhere and verified here; it never builds.

    Timing must not share its machine with a build, and an artifact that failed verification here must
    fail loudly rather than be quietly rebuilt on the measuring node.
    """

    node: str = "this node"

    @contextlib.contextmanager
    def building(self, key: str) -> Iterator[Path]:
        why = self.rejected.get(key, "it was not shipped here")
        raise RuntimeFailure(f"artifact {key[:12]} is not usable on {self.node} ({why}); the measuring node "
                             "does not build")
        yield Path()  # never reached: a context manager like the method it overrides


def _error(exc: BaseException, node: dict[str, Any], label: str) -> dict[str, Any]:
    where = describe_node(node)
    if isinstance(exc, EdgecraftError):
        message = exc.message if where in exc.message else f"target {label!r} on {where}: {exc.message}"
        return {"type": type(exc).__name__, "exit_code": exc.exit_code, "message": message, "hint": exc.hint}
    tail = "".join(traceback.format_exception(exc)[-3:]).strip()
    return {"type": type(exc).__name__, "exit_code": EXIT_PLUGIN_FAILURE,
            "message": f"target {label!r} on {where}: {type(exc).__name__}: {exc}\n{tail}", "hint": None}


def build_task(work: TargetWork) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Build (or take from this node's cache) the baseline and the compressed artifact of one target."""
    node: dict[str, Any] = {}
    try:
        node = node_identity()
        run, compiled = _prepare_on_node(work, node)
        cache = ArtifactCache(Path(work.shared_cache) if work.shared_cache else None)
        services = TargetServices.of(run, compiled, cache, NullProgress())
        started = time.time()
        (base, base_cached), (comp, comp_cached) = services.build(compiled)
        meta = {"node": {**node, "seconds": round(time.time() - started, 3)},
                "baseline": {"key": base.key, "path": str(base.path), "cached": base_cached,
                             "rebuilt": base.rebuilt_reason},
                "compressed": {"key": comp.key, "path": str(comp.path), "cached": comp_cached,
                               "rebuilt": comp.rebuilt_reason}}
        blobs = {} if work.shared_cache else {base.key: _pack(base.path), comp.key: _pack(comp.path)}
        return meta, blobs
    except BaseException as exc:
        return {"error": _error(exc, node, work.label)}, {}


def measure_task(work: TargetWork, built: dict[str, Any], blobs: dict[str, bytes]) -> dict[str, Any]:
    """Load, evaluate, time (holding this node's timing slot) and judge one target: ``run_target``'s code."""
    node: dict[str, Any] = {}
    try:
        node = node_identity()
        held_from = time.time()
        run, compiled = _prepare_on_node(work, node, measuring=True)  # runtime and device checked before timing
        with tempfile.TemporaryDirectory(prefix="edgecraft-shipped-") as tmp:
            root = Path(work.shared_cache) if work.shared_cache else Path(tmp)
            if not work.shared_cache:
                installer = ArtifactCache(root)
                for key, blob in blobs.items():
                    with installer.building(key) as out:
                        _unpack(blob, out)
            cache = ShippedCache(root)
            cache.node = describe_node(node)
            report = run_target(run, compiled, cache, NullProgress(), work.reference)
        held_to = time.time()
        base_built, comp_built = built["baseline"], built["compressed"]  # paths on the building node
        report = report.model_copy(update={
            "baseline": report.baseline.model_copy(update={"artifact": base_built["path"],
                                                           "cached": base_built["cached"],
                                                           "cache_rebuilt_reason": base_built["rebuilt"]}),
            "compressed": report.compressed.model_copy(update={"artifact": comp_built["path"],
                                                               "cached": comp_built["cached"],
                                                               "cache_rebuilt_reason": comp_built["rebuilt"]}),
            "artifact": comp_built["path"],
            "built_on": built["node"],
            "measured_on": {**node, "timing_slot_held": [round(held_from, 3), round(held_to, 3)],
                            "artifacts_via": "shared cache " + work.shared_cache if work.shared_cache
                            else "Ray object store"},
        })
        return {"report": report.model_dump(mode="json")}
    except BaseException as exc:
        return {"error": _error(exc, node, work.label)}
