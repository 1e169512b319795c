"""Save and load models on one target: the backend's ``import_onnx``/``save``/``load``/``artifact_size``,
wrapped so a backend's fault names the backend and its return values are checked.

Both stages after compile need exactly this and nothing more: the builder saves the models the steps
made, the evaluator and the timer load what was saved. Neither owns it, so it sits under both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecraft.backend import Backend, Session
from edgecraft.context import TargetView
from edgecraft.errors import EdgecraftError, RuntimeFailure
from edgecraft.model_source import export_onnx
from edgecraft.models import ModelHandle, NativeModel, OnnxModel, TorchModel
from edgecraft.plugin_checks import check_saved_files, check_session
from edgecraft.registry import Registry


def backend_call(backend: Backend, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call into a backend, turning unexpected exceptions into a RuntimeFailure that names it."""
    try:
        return fn(*args, **kwargs)
    except (EdgecraftError, KeyboardInterrupt):
        raise
    except BaseException as exc:  # SystemExit too: a backend must not decide the exit code
        raise RuntimeFailure(f"backend {backend.name!r} failed to {what}: {type(exc).__name__}: {exc}") from exc


@dataclass(frozen=True)
class ArtifactIO:
    """One target's backend, for turning model handles into artifact files and artifact folders into sessions."""

    backend: Backend
    view: TargetView
    #: Intra-op threads a loaded session uses (the plan's ``latency.threads``).
    threads: int
    #: Who the backend is, for error messages (``backend 'x' from dist 1.0 (plugin 'x')``).
    who: str
    #: How the plan's torch model exports to ONNX (the model source decides: dynamic axes, opset).
    export_options: Callable[[], dict[str, Any]]

    @classmethod
    def of(cls, registry: Registry, view: TargetView, threads: int,
           export_options: Callable[[], dict[str, Any]]) -> ArtifactIO:
        """The target ``view``'s backend from ``registry``, named with the distribution that provides it."""
        who = f"backend {view.backend_name!r} from {registry.backends[view.backend_name].provenance}"
        return cls(registry.backend(view.backend_name), view, threads, who, export_options)

    def to_onnx(self, handle: ModelHandle, work: Path) -> OnnxModel:
        if isinstance(handle, OnnxModel):
            return handle
        if isinstance(handle, TorchModel):
            return export_onnx(handle, work / "exported.onnx", **self.export_options())
        raise RuntimeFailure("a native model cannot be turned back into ONNX")

    @property
    def imports_torch(self) -> bool:
        """Whether the target builds from the torch model (``TargetInfo.imports``), not from an ONNX export."""
        return self.view.info.imports == "torch"

    def to_native(self, handle: ModelHandle, work: Path) -> NativeModel:
        if isinstance(handle, NativeModel):
            return handle
        if self.imports_torch:
            if not isinstance(handle, TorchModel):
                raise RuntimeFailure(f"target {self.view.label!r} builds from a torch model; got a "
                                     f"{handle.stage}-stage model")
            native_t = backend_call(self.backend, "import the torch model", self.backend.import_torch,
                                    handle, self.view.target, self.view.options, work)
            return NativeModel(native_t, self.view.info.native_format or self.backend.name, handle.io,
                               list(handle.lineage))
        onnx_model = self.to_onnx(handle, work)
        if self.view.info.import_plan_shapes:
            from edgecraft.assembly.plan_shapes import with_plan_shapes

            onnx_model = with_plan_shapes(onnx_model, work)
        native = backend_call(self.backend, f"import {onnx_model.path.name}", self.backend.import_onnx,
                              onnx_model.path, self.view.target, self.view.options, work)
        return NativeModel(native, self.view.info.native_format or self.backend.name, onnx_model.io,
                           list(onnx_model.lineage))

    def save(self, handle: ModelHandle, out: Path, work: Path) -> list[Path]:
        """Write ``handle`` as the backend's artifact files into ``out`` (``work``: scratch space)."""
        native = self.to_native(handle, work)
        files = backend_call(self.backend, "save the artifact", self.backend.save, native.model, self.view.target,
                             self.view.options, out)
        return check_saved_files(files, out, who=self.who)

    def size(self, files: list[Path]) -> int:
        size: int = backend_call(self.backend, "measure the artifact size", self.backend.artifact_size, files)
        return size

    def load(self, folder: Path) -> Session:
        """A session on the target's runtime for the artifact in ``folder``."""
        return check_session(backend_call(self.backend, f"load the artifact in {folder}", self.backend.load, folder,
                                          self.view.target, self.view.options, self.threads), who=self.who)
