"""Measure a torch model on bound data: top-1 accuracy, agreement and cosine similarity to a teacher.

These are torch-side numbers for a strategy's own decisions (sensitivity, early stopping, reports of
what training did); the release gate measures on the target runtime, never here. Outputs are
taken as batch-first (torch modules return samples on axis 0).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from edgecraft.torchkit.data import TorchData, first_output
from torch import nn


@torch.no_grad()
def predict(module: nn.Module, data: TorchData, *, output: int = 0, batch_size: int = 256) -> torch.Tensor:
    """Output ``output`` of ``module`` (eval mode) for every sample of ``data``, concatenated."""
    module.eval()
    chunks = [first_output(module(*batch.inputs), output) for batch in data.batches(batch_size)]
    return torch.cat(chunks)


def evaluate(module: nn.Module, data: TorchData, *, output: int = 0, teacher: nn.Module | torch.Tensor | None = None,
             batch_size: int = 256) -> dict[str, float]:
    """``accuracy`` (top-1 on labels, when ``data`` has them); with a teacher (a module, or its
    outputs for ``data``) also ``agreement`` (same top-1 class) and ``cosine`` (mean cosine
    similarity of the flattened outputs)."""
    outputs = predict(module, data, output=output, batch_size=batch_size)
    metrics: dict[str, float] = {}
    labels = data.labels
    if labels is not None:
        metrics["accuracy"] = float((outputs.argmax(dim=-1) == labels).float().mean())
    if teacher is not None:
        reference = teacher if isinstance(teacher, torch.Tensor) else predict(teacher, data, output=output,
                                                                              batch_size=batch_size)
        metrics["agreement"] = float((outputs.argmax(dim=-1) == reference.argmax(dim=-1)).float().mean())
        metrics["cosine"] = float(F.cosine_similarity(outputs.flatten(1).double(), reference.flatten(1).double(),
                                                      dim=1).mean())
    return metrics


def top1(module: nn.Module, data: TorchData, *, output: int = 0, batch_size: int = 256) -> float:
    """Top-1 accuracy of a classifier on labeled ``data``."""
    if not data.labeled:
        raise ValueError(f"dataset {data.name!r} has no labels")
    return evaluate(module, data, output=output, batch_size=batch_size)["accuracy"]
