"""Small models for the factorization tests (also usable as plan factories: 'factorization_models.py:make_cnn')."""

from __future__ import annotations

import numpy as np
import torch
from edgecraft.torchkit.data import TorchData
from torch import nn


class SmallCNN(nn.Module):
    """A few-channel stem, two wide 3×3 convolutions, a 1×1 and an MLP head: every method has a layer to act on."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 48, 3, padding=1, stride=2), nn.ReLU(),
            nn.Conv2d(48, 48, 3, padding=1), nn.ReLU(),
            nn.Conv2d(48, 32, 1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(128, 96), nn.ReLU(), nn.Linear(96, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class SmallMLP(nn.Module):
    def __init__(self, inputs: int = 64, classes: int = 10) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(inputs, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                                  nn.Linear(128, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def make_cnn() -> nn.Module:
    torch.manual_seed(0)
    return SmallCNN().eval()


def make_mlp() -> nn.Module:
    torch.manual_seed(0)
    return SmallMLP().eval()


def skewed_inputs(n: int, dims: int = 48, seed: int = 0) -> torch.Tensor:
    """Inputs that mostly live in a few directions, a few of them large (as transformer hidden states do)."""
    basis = torch.randn(12, dims, generator=torch.Generator().manual_seed(99))
    scale = torch.ones(12)
    scale[:3] = 10.0
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 12, generator=g) * scale) @ basis + 0.05 * torch.randn(n, dims, generator=g)


def as_data(x: torch.Tensor) -> TorchData:
    """Unlabeled calibration data of a tensor's rows."""
    return TorchData.from_arrays(x.numpy().astype(np.float32))
