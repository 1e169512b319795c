"""The contract between edgecraft and a hardware backend plugin.

A backend provides one or more **targets**. For each it declares an options model and its
capabilities (what strategies may ask of it), and it knows how to turn an ONNX model into an
artifact on disk (``import_onnx`` → optional native steps → ``save``) and how to run that artifact
(``load`` → :class:`Session`). A runtime whose compiler starts from the framework's own graph rather than
ONNX (ExecuTorch: ``torch.export``) declares ``imports="torch"`` on its targets and implements
``import_torch`` instead: the builder then hands it the torch model after the torch-stage steps, and
graph-stage (ONNX) steps are refused for such targets at compile time. Measurement (warm-up,
interleaving, percentiles) is the core's job, so numbers from different backends are comparable.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

#: The base of every target's options model: strict and frozen, defined with the plan's other sections.
from edgecraft.plan.sections import TargetOptions

if TYPE_CHECKING:
    from edgecraft.models import TorchModel

__all__ = ["Backend", "ExecutedCompute", "Session", "TargetInfo", "TargetOptions"]


@dataclass(frozen=True)
class TargetInfo:
    """What a backend declares about one of its targets."""

    name: str
    summary: str
    options_model: type[TargetOptions] = TargetOptions
    #: Free-form capability tags strategies test for, e.g. ``"onnx.int8.qdq"``, ``"openvino.nncf"``.
    capabilities: frozenset[str] = field(default_factory=frozenset)
    #: Format of the backend's in-memory model for native-stage steps (None: no native steps).
    native_format: str | None = None
    #: True when latency on this target is measured on an emulated device (not real hardware).
    emulated: bool = False
    #: What the backend builds its artifact from: ``"onnx"`` (the exported graph, :meth:`Backend.import_onnx`)
    #: or ``"torch"`` (the torch model itself, :meth:`Backend.import_torch`; no ONNX export, so graph-stage
    #: steps are refused at compile time and the plan's model must be a torch model).
    imports: Literal["onnx", "torch"] = "onnx"
    #: True when the backend's runtime runs faster with static shapes: the graph handed to ``import_onnx`` then has
    #: every dimension the plan fixes written into its inputs (axes the plan keeps symbolic stay symbolic; see
    #: :mod:`edgecraft.assembly.plan_shapes`).
    import_plan_shapes: bool = False


@dataclass
class ExecutedCompute:
    """The compute of the graph a runtime executes for an artifact, read back from the runtime (issue 26).

    The report's int8 share comes from here, not from the ONNX lineage: a runtime can run a QDQ graph in float
    (ONNX Runtime at basic optimization) and a native int8 step leaves no trace in the lineage (OpenVINO's NNCF).
    """

    #: What was read, for the report: e.g. "onnxruntime 1.32 optimized graph at level 'all'".
    source: str
    macs: int
    #: MACs of layers the runtime runs on integer kernels.
    int8_macs: int
    by_op: dict[str, int] = field(default_factory=dict)
    #: Compute layers whose MACs could not be determined (left out of both numbers).
    uncounted: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def int8_fraction(self) -> float:
        return self.int8_macs / self.macs if self.macs else 0.0


class Session(ABC):
    """A loaded artifact, ready to run. Feeds and outputs are numpy arrays."""

    @property
    @abstractmethod
    def input_names(self) -> list[str]:
        """Names of the model's inputs, in order."""

    @abstractmethod
    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run once and return every output."""

    def timed_runs(self, feeds: Mapping[str, np.ndarray], repeats: int) -> list[float]:
        """Seconds per call for ``repeats`` calls. Override where the host clock is wrong
        (e.g. a remote device, whose own timer excludes the network round trip)."""
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            self.run(feeds)
            times.append(time.perf_counter() - start)
        return times

    def describe(self) -> dict[str, Any]:
        """Facts for the report: device identity, precision, emulation."""
        return {}

    def close(self) -> None:  # noqa: B027 - optional hook, most sessions hold nothing to release
        """Release runtime resources (remote connections, servers)."""

    def memory_stats(self) -> dict[str, Any]:
        """The runtime's own memory accounting for this session (arena bytes, ...), if it exposes any.

        Reported next to edgecraft's process-level peak memory (:mod:`edgecraft.verify.memory`); the
        default is empty because neither ONNX Runtime's Python API nor OpenVINO's CPU plugin exposes such
        statistics (checked for onnxruntime 1.32 and OpenVINO 2026.4).
        """
        return {}


class Backend(ABC):
    """Subclass this and register the class from ``edgecraft_register_backends``."""

    #: Unique backend name (e.g. ``onnxruntime``).
    name: ClassVar[str]
    summary: ClassVar[str] = ""
    #: Capabilities this backend deliberately does not provide, with why (e.g. ``{"quantization.int8": "..."}``):
    #: a strategy asking for one (``ctx.implementation``) fails at compile time quoting the reason.
    refusals: ClassVar[Mapping[str, str]] = {}

    @abstractmethod
    def targets(self) -> list[TargetInfo]:
        """The targets this backend provides (cheap: must not import the runtime)."""

    def runtime_versions(self) -> dict[str, str]:
        """Versions of the runtimes behind this backend; part of the cache key."""
        return {}

    def check_available(self, target: str, options: TargetOptions) -> None:  # noqa: B027 - optional hook
        """Raise ``InputError`` with an install hint if the runtime or toolchain is missing.

        Called at compile time so a missing extra fails before anything is built.
        """

    @abstractmethod
    def import_onnx(self, onnx_path: Path, target: str, options: TargetOptions, work_dir: Path) -> Any:
        """Turn an ONNX file into the backend's in-memory model (for native steps and ``save``)."""

    def import_torch(self, model: TorchModel, target: str, options: TargetOptions, work_dir: Path) -> Any:
        """Turn a torch model (after the torch-stage steps) into the backend's in-memory model, for targets
        declared with ``imports="torch"``. ``model.module`` takes ``model.example_inputs()`` in ``model.io``'s
        input order; the module may be a quantized ``GraphModule`` made by this backend's own int8 step."""
        raise NotImplementedError(f"backend {self.name!r} declares no torch-importing target")

    @abstractmethod
    def save(self, native: Any, target: str, options: TargetOptions, out_dir: Path) -> list[Path]:
        """Write the artifact files into ``out_dir`` (a temporary directory) and return them."""

    @abstractmethod
    def load(self, artifact_dir: Path, target: str, options: TargetOptions, threads: int) -> Session:
        """Load an artifact written by ``save`` and return a session with ``threads`` intra-op threads."""

    def is_emulated(self, target: str, options: TargetOptions) -> bool:
        """Whether latency on this target, with these options, is measured on an emulated device.

        Defaults to the target's declaration; a backend whose options choose between an emulator
        and real hardware (e.g. TVM's ``device: emulated|rpc``) overrides this.
        """
        return next(info.emulated for info in self.targets() if info.name == target)

    def board_packages(self, device: str) -> dict[str, list[str]]:
        """Packages this backend needs installed on the device named ``device`` (e.g. ``arm64-emulated``): group
        name -> pip requirements of wheels for the device's platform, all dependencies listed (installed
        without resolving). ``edgecraft device setup`` installs them (:func:`edgecraft.boards.install_board_packages`)
        so a backend's runtime reaches a board that another backend prepared."""
        return {}

    def measures_memory_locally(self, target: str, options: TargetOptions) -> bool:
        """Whether a model loaded by :meth:`load` runs in this host's process, so that process's peak memory is
        the model's. A backend whose sessions run on a remote device (over RPC, in an emulator) returns False:
        edgecraft then reports memory as not measured there, never the host's memory for a remote target."""
        return True

    def load_runtime(self, target: str, options: TargetOptions) -> None:  # noqa: B027 - optional hook
        """Import and initialise the runtime without any model: the zero of a peak-memory measurement.

        Peak memory is what a model adds to a process in which the runtime is already loaded; a backend
        that does not override this has its runtime's own libraries counted as the model's memory (the
        report says so).
        """

    def executed_compute(self, artifact_dir: Path, target: str, options: TargetOptions, threads: int,
                         feeds: Mapping[str, np.ndarray],
                         input_shapes: Mapping[str, tuple[int, ...]] | None) -> ExecutedCompute | None:
        """MACs and their int8 share in the graph the runtime executes for this artifact, loaded as :meth:`load`
        loads it (same options), at batch 1: ``input_shapes`` are the inputs' batch-1 shapes (None when one is
        still symbolic), ``feeds`` the inputs timed (cut to batch 1 to run the graph or decide its branches).
        None (the default) when the backend cannot read its executed graph: the report
        then shows the lineage ONNX graph's count and says so."""
        return None

    def artifact_size(self, files: list[Path]) -> int:
        """Bytes the deployed model occupies (default: all artifact files)."""
        return sum(f.stat().st_size for f in files)
