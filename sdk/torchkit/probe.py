"""ONNX Runtime sessions for probing: time a layer or a candidate the way the ort-cpu target runs it.

The release gate times whole models through the backend; a strategy that wants to compare small
pieces (a layer against its factorized replacement) needs throw-away sessions with the same thread
settings. ``onnxruntime`` and ``torch.onnx`` do the work; this only fixes the settings once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn


def ort_session(path: Path | str, *, threads: int, inter_op_threads: int = 1) -> Any:
    """A CPU ``onnxruntime.InferenceSession`` with fixed intra- and inter-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = inter_op_threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def export_probe(module: nn.Module, inputs: Sequence[torch.Tensor], path: Path, *, opset: int = 17) -> list[str]:
    """Export a small module for timing; returns its input names (``x0``, ``x1``, ...).

    The TorchScript exporter is used for these throw-away graphs because it takes milliseconds per
    layer where the dynamo exporter takes seconds; models that ship are exported by edgecraft's
    own pipeline.
    """
    names = [f"x{i}" for i in range(len(inputs))]
    torch.onnx.export(module.eval(), tuple(inputs), str(path), input_names=names, output_names=["y"],
                      opset_version=opset, dynamo=False)
    return names
