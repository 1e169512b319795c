"""Small models for the pruning tests: every coupling Torch-Pruning must follow."""

from __future__ import annotations

import torch
from torch import nn


class Coupled(nn.Module):
    """Residual add, concat, BatchNorm, depthwise and grouped convs, and a Linear after a flatten."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                                   nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16))
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.grouped = nn.Conv2d(16, 32, 3, padding=1, groups=4)
        self.branch = nn.Conv2d(16, 16, 1)
        self.merge = nn.Conv2d(48, 32, 1)
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.head = nn.Linear(32 * 16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.relu(x + self.block(x))
        x = self.dw(x)
        y = torch.cat([self.grouped(x), self.branch(x)], dim=1)
        y = torch.relu(self.merge(y))
        return self.head(torch.flatten(self.pool(y), 1))


class ResidualCNN(nn.Module):
    """A small ResNet-style classifier for digits (32x32): two residual stages and global pooling."""

    def __init__(self, width: int = 32, classes: int = 10) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(nn.Conv2d(1, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU())
        self.b1 = _Block(w, w, 1)
        self.b2 = _Block(w, 2 * w, 2)
        self.b3 = _Block(2 * w, 2 * w, 1)
        self.fc = nn.Linear(2 * w, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.b3(self.b2(self.b1(self.stem(x))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = (nn.Sequential() if stride == 1 and cin == cout else
                      nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.short(x))


def coupled() -> nn.Module:
    torch.manual_seed(0)
    return Coupled().eval()


def residual() -> nn.Module:
    torch.manual_seed(0)
    return ResidualCNN(16).eval()


def digits_images(n: int = 128, seed: int = 0) -> tuple:
    """Labeled 32x32 digits from the bundled scikit-learn set (for fine-tuning and Taylor scores)."""
    from edgecraft.datasets import load_dataset
    from edgecraft.plugins.datasets.digits import DigitsParams

    ds = load_dataset("train", DigitsParams(split="train", max_samples=n, seed=seed), base_dir=None)
    return ds.x, ds.y


def mlp() -> nn.Module:
    """Linear layers only (flat input), for N:M and exact-sparsity checks."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 10)).eval()
