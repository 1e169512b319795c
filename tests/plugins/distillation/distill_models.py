"""Small models for the distillation tests (module name unique across the test tree: it is imported
by reference, 'distill_models:fn', from plans)."""

from __future__ import annotations

import torch
from torch import nn

INPUT_SHAPE = (1, 1, 8, 8)


class ResidualCNN(nn.Module):
    """A tiny CNN with a residual addition and a Linear after flatten (what width scaling must follow)."""

    def __init__(self, width: int = 16, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width))
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(width * 16, 2 * width), nn.ReLU(),
                                  nn.Linear(2 * width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        y = torch.relu(y + self.block(y))
        return self.head(self.pool(y))


def teacher() -> nn.Module:
    torch.manual_seed(0)
    return ResidualCNN(16).eval()


def small_student() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 16, 10))


def wrong_classes_student() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 7))


def wrong_input_student() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(100, 10))


def not_a_module() -> object:
    return {"weights": [1, 2, 3]}


def raising_student() -> nn.Module:
    raise RuntimeError("checkpoint missing")


class _NoLayers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(64, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w


def opaque_teacher() -> nn.Module:
    """No Conv/Linear layer at all: student: scaled cannot derive anything from it."""
    return _NoLayers()
