"""Fine-tuning and gradient collection for pruning (plain torch loops; the data is a small numpy Dataset).

Labeled data trains with cross-entropy. Unlabeled data trains the pruned model to reproduce the
unpruned model's outputs (MSE): recovery needs no labels, only the model it was cut from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np
from edgecraft.errors import InputError

if TYPE_CHECKING:
    import torch
    from edgecraft.datasets import Dataset
    from edgecraft.progress import Progress


def check_dataset(dataset: Dataset, input_shape: tuple[int, ...], *, where: str, field: str = "dataset") -> None:
    try:
        dataset.check_fits(input_shape)
    except InputError as exc:
        raise InputError(f"step {where}: params.{field}: {exc.message}", hint=exc.hint) from None


def _batches(dataset: Dataset, batch_size: int, rng: np.random.Generator
             ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    import torch

    order = rng.permutation(len(dataset))
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        x = torch.from_numpy(dataset.x[idx])
        y = None if dataset.y is None else torch.from_numpy(dataset.y[idx])
        yield x, y


class Objective:
    """Cross-entropy with labels, else MSE to the teacher's (unpruned model's) outputs."""

    def __init__(self, dataset: Dataset, teacher: Callable[[], torch.nn.Module] | None, *, where: str) -> None:
        self.labeled = dataset.labeled
        self._teacher: torch.nn.Module | None = None
        if not self.labeled:
            if teacher is None:
                raise InputError(f"step {where}: params.dataset {dataset.name!r} has no labels and no unpruned "
                                 "model is available to imitate", hint="use a labeled dataset")
            self._teacher = teacher().eval()

    @property
    def kind(self) -> str:
        return "cross_entropy" if self.labeled else "mse_to_unpruned"

    def __call__(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        import torch

        out = model(x)
        if self.labeled:
            assert y is not None
            return torch.nn.functional.cross_entropy(out, y)
        assert self._teacher is not None
        with torch.no_grad():
            target = self._teacher(x)
        return torch.nn.functional.mse_loss(out, target)


def finetune(model: torch.nn.Module, dataset: Dataset, objective: Objective, *, epochs: int, lr: float,
             batch_size: int, seed: int, progress: Progress, label: str,
             after_step: Callable[[], None] | None = None) -> float | None:
    """Train ``model`` in place; returns the mean loss of the last epoch (None when ``epochs`` is 0)."""
    import torch

    if epochs <= 0:
        return None
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    last = None
    model.train()
    for epoch in progress.track(range(epochs), total=epochs, description=label):
        total, count = 0.0, 0
        for x, y in _batches(dataset, batch_size, rng):
            optimizer.zero_grad(set_to_none=True)
            loss = objective(model, x, y)
            loss.backward()
            optimizer.step()
            if after_step is not None:
                after_step()
            total += float(loss.detach()) * len(x)
            count += len(x)
        last = total / max(count, 1)
        progress.status(f"{label}: epoch {epoch + 1}/{epochs} loss {last:.4f}")
    model.zero_grad(set_to_none=True)
    model.eval()
    return last


def accumulate_gradients(model: torch.nn.Module, dataset: Dataset, objective: Objective, *, batches: int,
                         batch_size: int, seed: int) -> None:
    """Leave ``.grad`` summed over ``batches`` batches (Taylor importance reads it); weights unchanged."""
    rng = np.random.default_rng(seed)
    model.eval()  # BatchNorm running statistics must not move while scoring
    model.zero_grad(set_to_none=True)
    for i, (x, y) in enumerate(_batches(dataset, batch_size, rng)):
        if i >= batches:
            break
        objective(model, x, y).backward()


def accuracy(model: torch.nn.Module, dataset: Dataset, batch_size: int = 256) -> float:
    """Top-1 of a classifier on a labeled dataset (torch; for benchmarks and tests)."""
    import torch

    assert dataset.y is not None
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in dataset.batches(batch_size):
            correct += int((model(torch.from_numpy(x)).argmax(1).numpy() == y).sum())
    return correct / len(dataset)
