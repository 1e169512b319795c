"""The ``onnx-reference`` target: ONNX graphs run on ``onnx.reference.ReferenceEvaluator``.

The artifact is the ONNX file itself (no optimizer rewrites it, so what the strategies produced is
exactly what runs and what is measured). ``onnx`` is imported inside the methods: listing plugins
must stay fast.
"""

from __future__ import annotations

import platform
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from edgecraft.backend import Backend, Session, TargetInfo, TargetOptions
from edgecraft.errors import InputError
from pydantic import Field

ARTIFACT_FILE = "model.onnx"


class OnnxReferenceOptions(TargetOptions):
    """Options of the ``onnx-reference`` target."""

    check_model: bool = Field(True, description="Run onnx.checker (full check) on the artifact when building it.")


class ReferenceSession(Session):
    def __init__(self, path: Path) -> None:
        import onnx
        from onnx.reference import ReferenceEvaluator

        model = onnx.load(str(path))
        self._inputs = [i.name for i in model.graph.input
                        if i.name not in {init.name for init in model.graph.initializer}]
        self._evaluator = ReferenceEvaluator(model)

    @property
    def input_names(self) -> list[str]:
        return self._inputs

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(o) for o in self._evaluator.run(None, dict(feeds))]

    def describe(self) -> dict[str, Any]:
        import onnx

        return {"runtime": f"onnx.reference.ReferenceEvaluator (onnx {onnx.__version__})",
                "device": f"CPU ({platform.machine()}), numpy {np.__version__}"}


class OnnxReferenceBackend(Backend):
    name = "onnx-reference"
    summary = "onnx's reference evaluator: slow, portable, the standard's own semantics"

    def targets(self) -> list[TargetInfo]:
        return [TargetInfo(name="onnx-reference", summary="ONNX reference evaluator (numpy) on this CPU",
                           options_model=OnnxReferenceOptions, capabilities=frozenset({"onnx.graph"}),
                           native_format="onnx")]

    def runtime_versions(self) -> dict[str, str]:
        from importlib.metadata import version

        return {"onnx": version("onnx"), "numpy": version("numpy")}

    def check_available(self, target: str, options: TargetOptions) -> None:
        try:
            from onnx.reference import ReferenceEvaluator  # noqa: F401
        except ImportError as exc:
            raise InputError("target onnx-reference needs onnx>=1.13 (onnx.reference)",
                             hint="pip install -U onnx") from exc

    def import_onnx(self, onnx_path: Path, target: str, options: TargetOptions, work_dir: Path) -> Path:
        return Path(onnx_path)

    def save(self, native: Any, target: str, options: TargetOptions, out_dir: Path) -> list[Path]:
        import onnx

        assert isinstance(options, OnnxReferenceOptions)
        out = out_dir / ARTIFACT_FILE
        shutil.copyfile(native, out)
        if options.check_model:
            onnx.checker.check_model(str(out), full_check=True)
        return [out]

    def load(self, artifact_dir: Path, target: str, options: TargetOptions, threads: int) -> Session:
        path = artifact_dir / ARTIFACT_FILE
        if not path.is_file():
            raise InputError(f"artifact {artifact_dir} has no {ARTIFACT_FILE}")
        return ReferenceSession(path)
