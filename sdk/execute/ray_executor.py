"""Targets built and measured on a Ray cluster (``edgecraft run PLAN --ray ADDRESS``, the ``ray`` extra).

The CLI compiles every target first (a bad plan fails in seconds, before anything is sent), then each
target becomes two Ray tasks, and the CLI gathers their results into the same ``edgecraft.report/v1``
report, with the node that built and the node that measured each target.

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
(:func:`edgecraft.runner.run_target`): load, evaluate, time the baseline and the candidate interleaved
on this one node, and judge, including the extra rounds an undecided verdict asks for, which need the
live sessions. The CLI then judges the run as a whole (status, exit code) and writes the reports.

**Why a custom resource for exclusive timing.** Every node that may time offers
``edgecraft_timing_slot: 1`` (``ray start --resources '{"edgecraft_timing_slot": 1}'``) and each measure
task holds one, so Ray's own scheduler never starts two timing tasks on one machine, and no queue,
lock service or lease of ours exists to get stuck: when a task or its node dies, Ray frees the slot.
A per-node lock actor would have needed exactly that lease handling. Building tasks do not take the
slot, but the measure task holds ``latency.threads`` CPUs, so on a node started with as many CPUs as
cores a build cannot run beside a timing either.

**Faults.** A task lost with its node (``NodeDiedError``, a crashed worker, a lost artifact object) sends
the target again, build and measurement, to another eligible node, up to ``placement.max_retries``; each
retry is listed in the target's report. While a task waits, the CLI checks every second that some live
node still offers what it asks for; when none has for ``placement.timeout_s`` seconds, the task is
cancelled and the target fails with exit 3 naming the placement: never a hang.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import socket
import tarfile
import tempfile
import threading
import time
import traceback
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecraft.assembly.artifacts import ArtifactCache
from edgecraft.errors import EXIT_PLUGIN_FAILURE, EdgecraftError, InputError, RuntimeFailure
from edgecraft.execute import OnTarget
from edgecraft.plan.spec import TIMING_SLOT, Placement

if TYPE_CHECKING:
    from collections.abc import Iterator

    from edgecraft.compile.checks import RunInputs
    from edgecraft.compile.compiler import CompiledPlan
    from edgecraft.progress import Progress
    from edgecraft.verify.gate import ReferenceReport
    from edgecraft.verify.report import TargetReport

RAY_INSTALL = "pip install 'edgecraft[ray]'"
#: ``--ray local``: start a one-node cluster inside the CLI's process (for trying the executor).
LOCAL = "local"
POLL_S = 1.0


class RemoteFailure(EdgecraftError):
    """A target failed on a cluster node; carries the exit code the failure had there."""

    def __init__(self, message: str, *, exit_code: int = EXIT_PLUGIN_FAILURE, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = exit_code


class NodeLost(Exception):
    """The node working on a target disappeared (internal: triggers a retry)."""


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise InputError("--ray needs the ray extra (Ray is not installed)", hint=RAY_INSTALL) from exc
    return ray


# ---------------------------------------------------------------------------- on the nodes
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


def node_identity() -> dict[str, Any]:
    """The node this code runs on, as the report names it."""
    ray = _ray()
    return {"node_id": ray.get_runtime_context().get_node_id(), "address": ray.util.get_node_ip_address(),
            "hostname": socket.gethostname(), "pid": os.getpid()}


def _where(node: dict[str, Any]) -> str:
    return f"node {node.get('node_id', '?')[:12]} ({node.get('address', '?')}, {node.get('hostname', '?')})"


def _prepare_on_node(work: TargetWork, node: dict[str, Any]) -> tuple[RunInputs, CompiledPlan]:
    """Recompile the target here. Anything this node lacks is a RuntimeFailure naming it (exit 3)."""
    from edgecraft import __version__
    from edgecraft.compile.checks import compile_all, prepare
    from edgecraft.plan.loading import validate_plan
    from edgecraft.registry import build_registry

    where = _where(node)
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
    if compiled.key() != work.key:
        differ = sorted(k for k in set(compiled.versions) | set(work.versions)
                        if compiled.versions.get(k) != work.versions.get(k))
        detail = ", ".join(f"{k}: {compiled.versions.get(k, 'missing')} here, {work.versions.get(k, 'missing')} "
                           "on the CLI" for k in differ) or "the compiled plan differs (model or data files?)"
        raise RuntimeFailure(f"{where} would build something else for target {work.label!r}: {detail}",
                             hint="every node needs the same edgecraft, plugins and runtime versions as the CLI")
    return run, compiled


def _pack(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(str(folder), arcname=".")
    return buffer.getvalue()


def _unpack(blob: bytes, out: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r") as tar:
        tar.extractall(out, filter="data")  # "data": no absolute paths, links out of the folder, devices


class ShippedCache(ArtifactCache):
    """The measuring node's cache: only what was built elsewhere and verified here; it never builds.

    Timing must not share its machine with a build, and an artifact that failed verification here must
    fail loudly rather than be quietly rebuilt on the measuring node.
    """

    node: str = "this node"

    def building(self, key: str) -> Iterator[Path]:  # type: ignore[override]
        why = self.rejected.get(key, "it was not shipped here")
        raise RuntimeFailure(f"artifact {key[:12]} is not usable on {self.node} ({why}); the measuring node "
                             "does not build")


def _error(exc: BaseException, node: dict[str, Any], label: str) -> dict[str, Any]:
    if isinstance(exc, EdgecraftError):
        message = exc.message if _where(node) in exc.message else f"target {label!r} on {_where(node)}: {exc.message}"
        return {"type": type(exc).__name__, "exit_code": exc.exit_code, "message": message, "hint": exc.hint}
    tail = "".join(traceback.format_exception(exc)[-3:]).strip()
    return {"type": type(exc).__name__, "exit_code": EXIT_PLUGIN_FAILURE,
            "message": f"target {label!r} on {_where(node)}: {type(exc).__name__}: {exc}\n{tail}", "hint": None}


def build_task(work: TargetWork) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Build (or take from this node's cache) the baseline and the compressed artifact of one target."""
    from edgecraft.assembly.pipeline import TargetPipeline
    from edgecraft.compile.checks import target_view
    from edgecraft.progress import NullProgress

    node: dict[str, Any] = {}
    try:
        node = node_identity()
        run, compiled = _prepare_on_node(work, node)
        cache = ArtifactCache(Path(work.shared_cache) if work.shared_cache else None)
        view = target_view(run.plan, run.registry, compiled)
        pipe = TargetPipeline(run.plan, run.registry, view, run.loader, run.datasets, cache, NullProgress(),
                              torch_memo=run.torch_memo)
        started = time.time()
        base, base_cached = pipe.baseline_artifact(compiled)
        comp, comp_cached = pipe.build(compiled)
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
    from edgecraft.progress import NullProgress
    from edgecraft.runner import run_target

    node: dict[str, Any] = {}
    try:
        node = node_identity()
        held_from = time.time()
        run, compiled = _prepare_on_node(work, node)  # the backend's runtime and device, checked before timing
        with tempfile.TemporaryDirectory(prefix="edgecraft-shipped-") as tmp:
            root = Path(work.shared_cache) if work.shared_cache else Path(tmp)
            if not work.shared_cache:
                installer = ArtifactCache(root)
                for key, blob in blobs.items():
                    with installer.building(key) as out:
                        _unpack(blob, out)
            cache = ShippedCache(root)
            cache.node = _where(node)
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


# ---------------------------------------------------------------------------- in the CLI
def _node_lost_errors() -> tuple[type[BaseException], ...]:
    import ray.exceptions as rex

    names = ("NodeDiedError", "WorkerCrashedError", "ObjectLostError", "OwnerDiedError", "LocalRayletDiedError",
             "ObjectFetchTimedOutError", "ActorDiedError")
    return tuple(getattr(rex, n) for n in names if hasattr(rex, n))


@dataclass
class _Request:
    """What one task asks the cluster for, for the feasibility check and the error message."""

    what: str
    resources: dict[str, float]
    cpus: float

    def describe(self) -> str:
        asks = {**self.resources, "CPU": self.cpus}
        return "{" + ", ".join(f'"{k}": {v:g}' for k, v in asks.items()) + "}"


@dataclass
class RayExecutor:
    """Send each target to a Ray cluster at ``address`` (``local``: start one inside this process)."""

    address: str
    #: Nodes seen while running (node id -> identity and resources), for the report.
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _inflight: set[Any] = field(default_factory=set)
    _started_here: bool = False

    def __post_init__(self) -> None:
        _ray()  # InputError with the install line, before anything is compiled

    # ------------------------------------------------------------------ cluster
    def _connect(self) -> None:
        ray = _ray()
        if ray.is_initialized():
            return
        common = {"log_to_driver": False, "logging_level": logging.WARNING, "include_dashboard": False}
        try:
            if self.address == LOCAL:
                ray.init(resources={TIMING_SLOT: 1}, **common)
            else:
                ray.init(address=self.address, **common)
        except Exception as exc:
            raise RuntimeFailure(f"cannot connect to the Ray cluster at {self.address}: {type(exc).__name__}: "
                                 f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}",
                                 hint="start one with `ray start --head --resources '{\"edgecraft_timing_slot\": "
                                      "1}'` and pass its address (HOST:6379), or --ray local") from exc
        self._started_here = True
        self._snapshot_nodes()

    @contextlib.contextmanager
    def connected(self) -> Iterator[RayExecutor]:
        """Stay connected across many ``run_targets`` calls (``edgecraft search --ray``: one per trial).

        Why: ``run_targets`` disconnects from a cluster it connected to itself (``local`` would start and
        stop a cluster per trial). Inside this block the connection stays open; give each concurrent call
        its own ``RayExecutor(address)`` (each has its own in-flight tasks and cancel event), which finds
        the connection open and leaves it so. The cluster started here (``local``) stops when it ends.
        """
        self._connect()
        started, self._started_here = self._started_here, False
        try:
            yield self
        finally:
            if started:
                _ray().shutdown()

    def timing_slots(self) -> int:
        """``edgecraft_timing_slot`` units offered by the live nodes: how many timings can run at once."""
        return int(sum(n["Resources"].get(TIMING_SLOT, 0.0) for n in self._snapshot_nodes() if n["Alive"]))

    def _snapshot_nodes(self) -> list[dict[str, Any]]:
        nodes = _ray().nodes()
        with self._lock:
            for n in nodes:
                self.nodes[n["NodeID"]] = {"node_id": n["NodeID"], "address": n["NodeManagerAddress"],
                                           "hostname": n.get("NodeManagerHostname"), "alive": n["Alive"],
                                           "resources": {k: v for k, v in n["Resources"].items()
                                                         if not k.startswith("node:")}}
        return nodes

    def _eligible(self, request: _Request) -> list[dict[str, Any]]:
        asks = {**request.resources, "CPU": request.cpus}
        return [n for n in self._snapshot_nodes()
                if n["Alive"] and all(n["Resources"].get(k, 0.0) >= v for k, v in asks.items())]

    def describe(self) -> dict[str, Any] | None:
        ray = _ray()
        return {"kind": "ray", "address": self.address, "ray_version": ray.__version__,
                "nodes": sorted(self.nodes.values(), key=lambda n: n["address"] + n["node_id"])}

    # ------------------------------------------------------------------ run
    def run_targets(self, run: RunInputs, compiled: dict[str, CompiledPlan], labels: list[str],
                    cache: ArtifactCache, progress: Progress, reference: ReferenceReport | None,
                    on_target: OnTarget) -> list[TargetReport]:
        from edgecraft import __version__

        ray = _ray()
        self._connect()
        plan_json = run.plan.model_dump(mode="json", by_alias=True)
        works = {label: TargetWork(
            plan=plan_json, plan_source=f"plan (target {label})", base_dir=str(run.base_dir.resolve()), label=label,
            key=compiled[label].key(), baseline_key=compiled[label].baseline().key(),
            versions=dict(compiled[label].versions), edgecraft_version=__version__,
            plugins=os.environ.get("EDGECRAFT_PLUGINS"), disabled_plugins=os.environ.get("EDGECRAFT_DISABLE_PLUGINS"),
            shared_cache=_placement(run, label).cache_dir, reference=reference) for label in labels}
        remote_build = ray.remote(build_task)
        remote_measure = ray.remote(measure_task)
        say_lock = threading.Lock()

        def say(message: str) -> None:
            with say_lock:
                progress.status(message)

        reports: dict[str, TargetReport] = {}
        try:
            with ThreadPoolExecutor(max_workers=max(1, len(labels)), thread_name_prefix="edgecraft-ray") as pool:
                futures: dict[Future[TargetReport], str] = {
                    pool.submit(self._target, works[label], _placement(run, label), run.plan.latency.threads,
                                remote_build, remote_measure, say): label for label in labels}
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                    for future in done:
                        if future.exception() is not None:
                            self._stop.set()
                            for other in pending:
                                other.cancel()
                            raise future.exception()  # type: ignore[misc]
                        reports[futures[future]] = future.result()
                        on_target(reports[futures[future]])
        finally:
            self._stop.set()
            self._cancel_all()
            if self._started_here:
                ray.shutdown()
                self._started_here = False
            self._stop.clear()
        return [reports[label] for label in labels]

    def _cancel_all(self) -> None:
        ray = _ray()
        with self._lock:
            refs, self._inflight = list(self._inflight), set()
        for ref in refs:
            with contextlib.suppress(Exception):  # already finished, or its node is gone
                ray.cancel(ref, force=True)

    def _await_eligible(self, request: _Request, placement: Placement, label: str) -> None:
        since = time.monotonic()
        while not self._eligible(request):
            if self._stop.is_set():
                raise RuntimeFailure(f"target {label!r}: cancelled (another target failed)")
            if time.monotonic() - since >= placement.timeout_s:
                raise self._unsatisfiable(request, placement, label)
            time.sleep(POLL_S)

    def _unsatisfiable(self, request: _Request, placement: Placement, label: str) -> RuntimeFailure:
        alive = [n for n in self.nodes.values() if n["alive"]]
        offered = "; ".join(f"{n['address']} {n['node_id'][:8]}: {_offer(n['resources'])}"
                            for n in alive) or "no live nodes"
        return RuntimeFailure(
            f"target {label!r}: no node of the Ray cluster at {self.address} satisfies the placement of its "
            f"{request.what} {request.describe()} (waited {placement.timeout_s:g} s); nodes: {offered}",
            hint="start a node with those resources (ray start --address HEAD:6379 --resources '{...}'), or "
                 f'change the target\'s placement; every measuring node needs "{TIMING_SLOT}": 1')

    def _await(self, ref: Any, request: _Request, placement: Placement, label: str) -> Any:
        """The task's value; RuntimeFailure when no live node offers what it asks for during the timeout."""
        ray = _ray()
        with self._lock:
            self._inflight.add(ref)
        infeasible_since: float | None = None
        try:
            while True:
                ready, _ = ray.wait([ref], timeout=POLL_S)
                if ready:
                    return ray.get(ref)
                if self._stop.is_set():
                    raise RuntimeFailure(f"target {label!r}: cancelled (another target failed)")
                if self._eligible(request):
                    infeasible_since = None
                    continue
                now = time.monotonic()
                infeasible_since = infeasible_since or now
                if now - infeasible_since >= placement.timeout_s:
                    ray.cancel(ref, force=True)
                    raise self._unsatisfiable(request, placement, label)
        finally:
            with self._lock:
                self._inflight.discard(ref)

    def _target(self, work: TargetWork, placement: Placement, threads: int, remote_build: Any,
                remote_measure: Any, say: Any) -> TargetReport:
        from edgecraft.verify.report import TargetReport

        lost = _node_lost_errors()
        build_req = _Request("build", dict(placement.build_resources), 1.0)
        measure_req = _Request("measurement", {TIMING_SLOT: 1.0, **placement.resources}, float(threads))
        retries: list[dict[str, Any]] = []
        attempt = 0
        while True:
            attempt += 1
            stage = "build"
            try:
                self._await_eligible(measure_req, placement, work.label)  # no build for a target nobody can time
                say(f"{work.label}: building on the Ray cluster (attempt {attempt})")
                meta_ref, blobs_ref = remote_build.options(
                    num_cpus=1, resources=build_req.resources or None, max_retries=0, num_returns=2).remote(work)
                meta = self._await(meta_ref, build_req, placement, work.label)
                if "error" in meta:
                    raise _remote(meta["error"])
                say(f"{work.label}: built on {_where(meta['node'])}; measuring (holding a timing slot)")
                stage = "measurement"
                result_ref = remote_measure.options(
                    num_cpus=float(threads), resources=measure_req.resources, max_retries=0).remote(
                        work, meta, blobs_ref)
                result = self._await(result_ref, measure_req, placement, work.label)
                if "error" in result:
                    raise _remote(result["error"])
                report = TargetReport.model_validate(result["report"])
                say(f"{work.label}: measured on {_where(report.measured_on or {})}")
                return report.model_copy(update={"retries": retries}) if retries else report
            except lost as exc:
                text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                node_id = _node_id_in(str(exc))
                node = {k: v for k, v in self.nodes.get(node_id or "", {"node_id": node_id}).items() if k != "alive"}
                retries.append({"attempt": attempt, "stage": stage, "error": type(exc).__name__, "detail": text[:400],
                                "node": node if node_id else None})
                if attempt > placement.max_retries:
                    raise RuntimeFailure(f"target {work.label!r}: the node working on its {stage} was lost "
                                         f"{attempt} time(s) (placement.max_retries = {placement.max_retries}): "
                                         f"{text}") from exc
                say(f"{work.label}: node lost during the {stage} ({type(exc).__name__}); sending it again")


def _placement(run: RunInputs, label: str) -> Placement:
    spec = next(t for t in run.plan.targets if t.label == label)
    return spec.placement or Placement()


def _offer(resources: dict[str, float]) -> str:
    keep = {k: v for k, v in resources.items() if k not in ("memory", "object_store_memory")}
    return "{" + ", ".join(f'"{k}": {v:g}' for k, v in sorted(keep.items())) + "}"


def _node_id_in(text: str) -> str | None:
    match = re.search(r"node ID: ([0-9a-f]{16,})", text)
    return match.group(1) if match else None


def _remote(error: dict[str, Any]) -> RemoteFailure:
    return RemoteFailure(error["message"], exit_code=int(error["exit_code"]), hint=error.get("hint"))


__all__ = ["LOCAL", "RayExecutor", "RemoteFailure", "ShippedCache", "TargetWork", "build_task", "measure_task"]
