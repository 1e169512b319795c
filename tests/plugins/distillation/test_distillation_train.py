"""The training loop: distillation beats (or matches) labels alone, reproducibility, caching, early
stopping, feature distillation, label-free training and the sparsity-keeping rule."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

import numpy as np
import pytest
import torch
from edgecraft.plugins.distillation.train import DistillationError, distill
from edgecraft.torchkit import TorchData, top1
from torch import nn

T = TypeVar("T")
DIM, CLASSES = 24, 5


def _teacher() -> nn.Module:
    """A fixed nonlinear teacher; its argmax is the ground truth of the synthetic task."""
    torch.manual_seed(123)
    model = nn.Sequential(nn.Linear(DIM, 48), nn.Tanh(), nn.Linear(48, CLASSES))
    with torch.no_grad():
        model[2].weight.mul_(3.0)
    return model.eval()


def _x(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def _data(teacher: nn.Module, n: int, seed: int, *, labels: bool = True) -> TorchData:
    x = _x(n, seed)
    with torch.no_grad():
        y = teacher(torch.from_numpy(x)).argmax(dim=-1).numpy().astype(np.int64)
    return TorchData.from_arrays(x, y if labels else None, name=f"synthetic-{seed}")


def accuracy(model: nn.Module, data: TorchData) -> float:
    return top1(model, data)


def _student(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(DIM, 16), nn.ReLU(), nn.Linear(16, CLASSES))


FAST = {"epochs": 60, "batch_size": 16, "lr": 0.01, "validation_fraction": 0.0, "patience": None}


def test_distilled_student_beats_or_matches_labels_only_twin() -> None:
    """Few labelled samples: the teacher's soft targets carry far more than one class index each."""
    teacher = _teacher()
    train, test = _data(teacher, 64, seed=1), _data(teacher, 2000, seed=2)
    kd = distill(teacher, _student(), train, {**FAST, "alpha": 0.9, "temperature": 2.0}).student
    labels_only = distill(teacher, _student(), train, {**FAST, "alpha": 0.0}).student
    kd_acc, ce_acc = accuracy(kd, test), accuracy(labels_only, test)
    assert kd_acc >= ce_acc, (kd_acc, ce_acc)
    assert kd_acc > 0.6  # it learned the task, not just tied at chance


def test_same_seed_same_student_and_other_seed_differs() -> None:
    teacher, train = _teacher(), _data(_teacher(), 96, seed=3)
    params = {**FAST, "epochs": 3, "validation_fraction": 0.25, "augment": "noise"}
    a = distill(teacher, _student(0), train, params, seed=7).student
    b = distill(teacher, _student(0), train, params, seed=7).student
    c = distill(teacher, _student(0), train, params, seed=8).student
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters(), strict=True))


class _CountingTeacher(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.samples = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.samples += x.shape[0]
        return self.inner(x)


@pytest.mark.parametrize("augment, cached", [("none", True), ("noise", False)])
def test_teacher_outputs_are_cached_across_epochs_without_augmentation(augment: str, cached: bool) -> None:
    teacher = _CountingTeacher(_teacher())
    train = _data(_teacher(), 50, seed=4)
    result = distill(teacher, _student(), train, {**FAST, "epochs": 4, "augment": augment})
    assert result.teacher_cached is cached
    per_epoch = 50
    # 2 samples probe the output width; cached: one pass over the data; else one pass per epoch.
    assert teacher.samples == 2 + (per_epoch if cached else 4 * per_epoch)


def test_early_stopping_restores_the_best_epoch() -> None:
    teacher = _teacher()
    train = _data(teacher, 80, seed=5)
    # Validation labels are noise: validation accuracy wanders, so patience 2 stops long before 50 epochs.
    noisy = TorchData.from_arrays(_x(40, 6), np.random.default_rng(0).integers(0, CLASSES, 40), name="noisy")
    result = distill(teacher, _student(), train, {**FAST, "epochs": 50, "patience": 2}, validation=noisy)
    assert result.stopped_early and len(result.history) < 50
    assert result.monitor == "accuracy"
    best = max(row["val_accuracy"] for row in result.history)
    assert result.best_value == best
    tied = [row for row in result.history if row["val_accuracy"] == best]
    assert result.best_epoch == min(tied, key=lambda row: row["val_loss"])["epoch"]  # ties: lowest val loss
    assert accuracy(result.student, noisy) == pytest.approx(best)


def test_without_labels_soft_targets_alone() -> None:
    teacher = _teacher()
    train, test = _data(teacher, 64, seed=1, labels=False), _data(teacher, 500, seed=2)
    result = distill(teacher, _student(), train, {**FAST, "validation_fraction": 0.2})
    assert not result.used_labels and result.monitor == "loss"
    assert all(row["hard_loss"] is None for row in result.history)
    assert accuracy(result.student, test) > 0.6


def test_feature_distillation_with_adapters() -> None:
    teacher = _teacher()
    train = _data(teacher, 64, seed=1)
    params = {**FAST, "epochs": 3, "features": [{"teacher": "1", "student": "1", "weight": 0.5}]}
    result = distill(teacher, _student(), train, params)
    assert all(row["feature_loss"] is not None and row["feature_loss"] > 0 for row in result.history)
    # The adapters are a training aid: the student keeps its own architecture.
    assert [type(m) for m in result.student] == [nn.Linear, nn.ReLU, nn.Linear]


def test_feature_pair_naming_a_missing_layer() -> None:
    teacher = _teacher()
    with pytest.raises(DistillationError, match=r"the student has no layer named \['encoder'\]"):
        distill(teacher, _student(), _data(teacher, 16, seed=1),
                {**FAST, "features": [{"teacher": "1", "student": "encoder"}]})


def test_zero_weights_stay_zero() -> None:
    teacher = _teacher()
    student = _student()
    with torch.no_grad():
        student[0].weight[:, ::2] = 0.0  # half the weights pruned, as an unstructured step leaves them
    zeros = student[0].weight == 0
    distill(teacher, student, _data(teacher, 64, seed=1), {**FAST, "epochs": 3})
    assert bool((student[0].weight[zeros] == 0).all())
    assert bool((student[0].weight[~zeros] != 0).all())


def test_labels_out_of_the_teachers_range() -> None:
    teacher = _teacher()
    bad = TorchData.from_arrays(_x(8, 1), np.full(8, 9, dtype=np.int64), name="bad")
    with pytest.raises(DistillationError, match=r"labels in \[9, 9\] but the teacher predicts 5 classes"):
        distill(teacher, _student(), bad, FAST)


def test_shift_needs_spatial_inputs() -> None:
    teacher = _teacher()
    with pytest.raises(DistillationError, match="augment: shift needs image or sequence inputs"):
        distill(teacher, _student(), _data(teacher, 8, seed=1), {**FAST, "augment": "shift"})


class _Recorder:
    def __init__(self) -> None:
        self.descriptions: list[str] = []
        self.statuses: list[str] = []

    def track(self, items: Iterable[T], *, total: int | None = None, description: str = "") -> Iterator[T]:
        self.descriptions.append(description)
        yield from items

    def status(self, message: str) -> None:
        self.statuses.append(message)


def test_progress_shows_current_losses() -> None:
    teacher, recorder = _teacher(), _Recorder()
    distill(teacher, _student(), _data(teacher, 64, seed=1), {**FAST, "epochs": 3, "validation_fraction": 0.25},
            progress=recorder)
    assert recorder.descriptions[0] == "distill 1/3"
    assert "loss" in recorder.descriptions[1] and "val acc" in recorder.descriptions[2]
    assert len(recorder.statuses) == 3 and "val" in recorder.statuses[-1]


@pytest.mark.parametrize("optimizer, schedule, expected_lrs", [
    ("sgd", "step", [0.01, 0.01, 0.005, 0.005]),  # the lr each epoch ran at: halved every 2 epochs
    ("adamw", "none", [0.01, 0.01, 0.01, 0.01]),
    ("adam", "cosine", [0.01 * (1 + np.cos(np.pi * e / 4)) / 2 for e in range(4)]),
])
def test_optimizers_and_schedules(optimizer: str, schedule: str, expected_lrs: list[float]) -> None:
    teacher = _teacher()
    params = {**FAST, "epochs": 4, "optimizer": optimizer, "schedule": schedule, "step_size": 2, "gamma": 0.5}
    result = distill(teacher, _student(), _data(teacher, 32, seed=1), params)
    assert [row["lr"] for row in result.history] == pytest.approx(expected_lrs, abs=1e-9)
    assert all(np.isfinite(row["train_loss"]) for row in result.history)
