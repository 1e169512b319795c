"""Targets built and measured on a Ray cluster (``edgecraft run PLAN --ray ADDRESS``, the ``ray`` extra).

The CLI compiles every target first (a bad plan fails in seconds, before anything is sent), then each
target becomes two Ray tasks (:mod:`edgecraft.execute.ray_tasks`: a build task, then a measure task
that runs the very code of the in-process run), and the CLI gathers their results into the same
``edgecraft.report/v1`` report, with the node that built and the node that measured each target. The
CLI then judges the run as a whole (status, exit code) and writes the reports.

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
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edgecraft import __version__
from edgecraft.errors import EXIT_PLUGIN_FAILURE, EdgecraftError, RuntimeFailure
from edgecraft.execute.base import OnTarget, TargetsFailed, target_error
from edgecraft.execute.ray_tasks import (
    TargetWork,
    build_task,
    describe_node,
    measure_task,
    plan_for_nodes,
    ray_module,
)
from edgecraft.plan.spec import TIMING_SLOT, Placement
from edgecraft.settings import DISABLE_ENV, PLUGINS_ENV
from edgecraft.verify.report import TargetReport

if TYPE_CHECKING:
    from edgecraft.assembly.artifacts import ArtifactCache
    from edgecraft.compile.checks import RunInputs
    from edgecraft.compile.compiler import CompiledPlan
    from edgecraft.progress import Progress
    from edgecraft.verify.gate import ReferenceReport
    from edgecraft.verify.report import TargetError

#: ``--ray local``: start a one-node cluster inside the CLI's process (for trying the executor).
LOCAL = "local"
POLL_S = 1.0


class RemoteFailure(EdgecraftError):
    """A target failed on a cluster node; carries the exit code the failure had there."""

    def __init__(self, message: str, *, exit_code: int = EXIT_PLUGIN_FAILURE, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = exit_code


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
        ray_module()  # InputError with the install line, before anything is compiled

    # ------------------------------------------------------------------ cluster
    def _connect(self) -> None:
        ray = ray_module()
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
                ray_module().shutdown()

    def timing_slots(self) -> int:
        """``edgecraft_timing_slot`` units offered by the live nodes: how many timings can run at once."""
        return int(sum(n["Resources"].get(TIMING_SLOT, 0.0) for n in self._snapshot_nodes() if n["Alive"]))

    def _snapshot_nodes(self) -> list[dict[str, Any]]:
        nodes = ray_module().nodes()
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
        ray = ray_module()
        return {"kind": "ray", "address": self.address, "ray_version": ray.__version__,
                "nodes": sorted(self.nodes.values(), key=lambda n: n["address"] + n["node_id"])}

    # ------------------------------------------------------------------ run
    def run_targets(self, run: RunInputs, compiled: dict[str, CompiledPlan], labels: list[str],
                    cache: ArtifactCache, progress: Progress, reference: ReferenceReport | None,
                    on_target: OnTarget) -> list[TargetReport]:
        ray = ray_module()
        self._connect()
        plan_json = plan_for_nodes(run.plan)
        selection = run.registry.settings.child_environ()  # the nodes load the plugins this registry loaded
        works = {label: TargetWork(
            plan=plan_json, plan_source=f"plan (target {label})", base_dir=str(run.base_dir.resolve()), label=label,
            key=compiled[label].key(), baseline_key=compiled[label].baseline().key(),
            versions=dict(compiled[label].versions), edgecraft_version=__version__,
            plugins=selection[PLUGINS_ENV] or None, disabled_plugins=selection[DISABLE_ENV] or None,
            shared_cache=_placement(run, label).cache_dir, reference=reference) for label in labels}
        remote_build = ray.remote(build_task)
        remote_measure = ray.remote(measure_task)
        say_lock = threading.Lock()

        def say(message: str) -> None:
            with say_lock:
                progress.status(message)

        reports: dict[str, TargetReport] = {}
        failed: dict[str, tuple[TargetError, EdgecraftError]] = {}
        try:
            with ThreadPoolExecutor(max_workers=max(1, len(labels)), thread_name_prefix="edgecraft-ray") as pool:
                futures: dict[Future[TargetReport], str] = {
                    pool.submit(self._target, works[label], _placement(run, label), run.plan.latency.threads,
                                remote_build, remote_measure, say): label for label in labels}
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        label = futures[future]
                        failure = future.exception()
                        if isinstance(failure, EdgecraftError):
                            # One target's error (unsatisfiable placement, a remote build that failed) is
                            # that target's outcome: the others still finish and the report shows both, as
                            # in-process (issue 26). Anything else is a defect or an interrupt: stop all.
                            target = compiled[label].target
                            backend = run.registry.target(target)[0].name
                            failed[label] = (target_error(label, target, backend, failure), failure)
                            say(f"{label}: error: {failure.message}")
                            continue
                        if failure is not None:
                            self._stop.set()
                            for other in pending:
                                other.cancel()
                            raise failure
                        reports[label] = future.result()
                        on_target(reports[label])
        finally:
            self._stop.set()
            self._cancel_all()
            if self._started_here:
                ray.shutdown()
                self._started_here = False
            self._stop.clear()
        if failed:
            order = [label for label in labels if label in failed]
            raise TargetsFailed([reports[label] for label in labels if label in reports],
                                [failed[label][0] for label in order], [failed[label][1] for label in order])
        return [reports[label] for label in labels]

    def _cancel_all(self) -> None:
        ray = ray_module()
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
        ray = ray_module()
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
                remote_measure: Any, say: Callable[[str], None]) -> TargetReport:
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
                say(f"{work.label}: built on {describe_node(meta['node'])}; measuring (holding a timing slot)")
                stage = "measurement"
                result_ref = remote_measure.options(
                    num_cpus=float(threads), resources=measure_req.resources, max_retries=0).remote(
                        work, meta, blobs_ref)
                result = self._await(result_ref, measure_req, placement, work.label)
                if "error" in result:
                    raise _remote(result["error"])
                report = TargetReport.model_validate(result["report"])
                say(f"{work.label}: measured on {describe_node(report.measured_on or {})}")
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


__all__ = ["LOCAL", "RayExecutor", "RemoteFailure"]
