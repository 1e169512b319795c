"""Recovery after factorization: a plain fine-tune, or distillation from the original model.

Truncation removes what each layer's weights said least about, not what the task needs least, so
a short training run on task data usually wins most of the lost accuracy back. Distillation
reuses the distillation plugin's loop (``edgecraft.plugins.distillation``), which is the place
that knows about temperatures, caching the teacher and early stopping.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from edgecraft.datasets import Dataset
from torch import nn

DISTILL_MODULES = ("edgecraft.plugins.distillation", "edgecraft.plugins.distillation.train")


def find_distill() -> Callable[..., Any] | None:
    """The distillation plugin's ``distill(teacher, student, dataset, params, ...)``, if installed."""
    for name in DISTILL_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        fn = getattr(module, "distill", None)
        if callable(fn):
            return fn
    return None


def distill_available() -> bool:
    """Cheap check for compile time: is there a distillation package that may provide ``distill``?"""
    import importlib.util

    try:
        return importlib.util.find_spec("edgecraft.plugins.distillation") is not None
    except ImportError:
        return False


def finetune(module: nn.Module, dataset: Dataset, *, epochs: int, lr: float, batch_size: int,
             seed: int) -> dict[str, Any]:
    """Train ``module`` in place with cross-entropy on ``dataset``'s labels (Adam, shuffled batches, BatchNorm
    statistics frozen)."""
    if dataset.y is None:
        raise ValueError(f"dataset {dataset.name!r} has no labels; a fine-tune needs labels (use recover: distill "
                         "to learn from the original model instead)")
    started = time.perf_counter()
    x = torch.from_numpy(np.ascontiguousarray(dataset.x))
    y = torch.from_numpy(dataset.y)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(module.parameters(), lr=lr)
    losses = []
    module.train()
    # BatchNorm keeps the original model's statistics: they were estimated on the whole training set
    # with the original weights, and re-estimating them from a few small recovery batches adds noise
    # that the short fine-tune cannot average out (the usual practice when fine-tuning a compressed model).
    for sub in module.modules():
        if isinstance(sub, nn.modules.batchnorm._BatchNorm):
            sub.eval()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        total, count = 0.0, 0
        for start in range(0, len(x), batch_size):
            idx = order[start:start + batch_size]
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(module(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            count += len(idx)
        losses.append(total / max(1, count))
    module.eval()
    return {"recovery": "finetune", "epochs": epochs, "train_loss": [round(v, 5) for v in losses],
            "train_size": len(x), "train_seconds": round(time.perf_counter() - started, 2)}


def distill_from(teacher: nn.Module, student: nn.Module, dataset: Dataset, *, epochs: int, lr: float,
                 batch_size: int, seed: int, progress: Any = None) -> dict[str, Any]:
    """Distil ``teacher`` into ``student`` in place with the distillation plugin's loop."""
    distill = find_distill()
    if distill is None:
        raise RuntimeError("recover: distill needs the distillation plugin (edgecraft.plugins.distillation.distill)")
    result = distill(teacher, student, dataset,
                     {"epochs": epochs, "lr": lr, "batch_size": batch_size, "keep_zeros": False},
                     progress=progress, seed=seed)
    trained = getattr(result, "student", student)
    if trained is not student:
        student.load_state_dict(trained.state_dict())
    student.eval()
    summary = result.summary() if hasattr(result, "summary") else {}
    return {"recovery": "distill", **summary}
