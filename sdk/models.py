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

if TYPE_CHECKING:
    import torch


class Stage(StrEnum):
    """Where a step works. Steps must appear in non-decreasing stage order in a plan."""

    TORCH = "torch"
    ONNX = "onnx"
    NATIVE = "native"


@dataclass(frozen=True)
class InputSpec:
    """The single input edgecraft feeds a model: name, shape (batch 1) and dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    def with_batch(self, batch: int) -> tuple[int, ...]:
        return (batch, *self.shape[1:])


@dataclass
class TorchModel:
    """A torch module with its input spec, before export."""

    module: torch.nn.Module
    input_spec: InputSpec
    output_name: str = "output"
    #: Free-form facts steps attach (e.g. pruned channel counts) that end up in the manifest.
    lineage: list[dict[str, Any]] = field(default_factory=list)

    stage = Stage.TORCH


@dataclass
class OnnxModel:
    """An ONNX file on disk (inside the build's temporary directory)."""

    path: Path
    input_spec: InputSpec
    lineage: list[dict[str, Any]] = field(default_factory=list)

    stage = Stage.ONNX


@dataclass
class NativeModel:
    """A backend's in-memory model (e.g. ``openvino.Model``); only its backend and native steps know it."""

    model: Any
    format: str
    input_spec: InputSpec
    lineage: list[dict[str, Any]] = field(default_factory=list)

    stage = Stage.NATIVE


ModelHandle = TorchModel | OnnxModel | NativeModel
