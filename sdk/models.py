"""Model handles passed between pipeline stages.

A plan's steps run in stage order: torch-level steps on an ``nn.Module``, then graph-level steps on
an exported ONNX file, then native steps on the backend's own in-memory model (e.g. an OpenVINO
``ov.Model`` for NNCF). Each handle is the model *between* two steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecraft.modelio import ModelIO

if TYPE_CHECKING:
    import torch


class Stage(StrEnum):
    """Where a step works. Steps must appear in non-decreasing stage order in a plan."""

    TORCH = "torch"
    ONNX = "onnx"
    NATIVE = "native"


@dataclass
class TorchModel:
    """A torch module with its I/O, before export. ``module(*inputs)`` takes the inputs in ``io`` order."""

    module: torch.nn.Module
    io: ModelIO
    #: Free-form facts steps attach (e.g. pruned channel counts) that end up in the manifest.
    lineage: list[dict[str, Any]] = field(default_factory=list)
    #: Input name -> {axis: symbol} kept dynamic in the ONNX export beyond the batch axes (e.g. sequence).
    dynamic: dict[str, dict[int, str]] = field(default_factory=dict)

    stage = Stage.TORCH

    @property
    def output_name(self) -> str:
        return self.io.output_names[0] if self.io.outputs else "output"

    def copy(self) -> TorchModel:
        """A deep copy of the module (steps mutate their own copy), same I/O."""
        import copy

        return TorchModel(copy.deepcopy(self.module), self.io, list(self.lineage), dict(self.dynamic))

    def with_module(self, module: torch.nn.Module) -> TorchModel:
        return TorchModel(module, self.io, list(self.lineage), dict(self.dynamic))

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """Every input's dynamic axes for export: its batch axis plus the source's declared ones."""
        axes: dict[str, dict[int, str]] = {}
        for spec in self.io.inputs:
            entry = dict(self.dynamic.get(spec.name, {}))
            if spec.batch_axis is not None and spec.max_batch is None:
                entry.setdefault(spec.batch_axis, "batch")
            axes[spec.name] = entry
        return axes

    def example_inputs(self, batch: int = 1) -> list[torch.Tensor]:
        """Stand-in tensors of the declared shapes and dtypes (zeros for floats, ones for integers)."""
        import torch

        tensors = []
        for spec in self.io.inputs:
            shape = spec.concrete(batch if spec.max_batch is None else 1)
            dtype = getattr(torch, spec.dtype)
            tensors.append(torch.zeros(shape, dtype=dtype) if spec.is_float else torch.ones(shape, dtype=dtype))
        return tensors


@dataclass
class OnnxModel:
    """An ONNX file on disk (inside the build's temporary directory)."""

    path: Path
    io: ModelIO
    lineage: list[dict[str, Any]] = field(default_factory=list)

    stage = Stage.ONNX


@dataclass
class NativeModel:
    """A backend's in-memory model (e.g. ``openvino.Model``); only its backend and native steps know it."""

    model: Any
    format: str
    io: ModelIO
    lineage: list[dict[str, Any]] = field(default_factory=list)

    stage = Stage.NATIVE


ModelHandle = TorchModel | OnnxModel | NativeModel
