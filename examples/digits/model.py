"""The bundled example model: a small residual CNN for scikit-learn's digits, upsampled to 32×32.

Sized on purpose: about 0.3 M parameters and ~40 M multiply-accumulates per image, so a batch-1
inference takes on the order of a millisecond on two CPU cores. Smaller and per-call overhead would
swamp every difference between variants; this way quantization, pruning and factorization show up
in measured latency. It has residual additions, BatchNorm and a Linear after pooling, the
dependency patterns structured pruning has to follow.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

WEIGHTS = Path(__file__).with_name("digits_resnet.pt")
INPUT_SHAPE = (1, 1, 32, 32)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with a residual addition (a 1×1 projection when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + self.shortcut(x))


class DigitsResNet(nn.Module):
    def __init__(self, widths: tuple[int, int, int] = (32, 64, 128), num_classes: int = 10) -> None:
        super().__init__()
        w1, w2, w3 = widths
        self.stem = nn.Sequential(nn.Conv2d(1, w1, 3, padding=1, bias=False), nn.BatchNorm2d(w1), nn.ReLU())
        self.layer1 = BasicBlock(w1, w1, 1)
        self.layer2 = BasicBlock(w1, w2, 2)
        self.layer3 = BasicBlock(w2, w3, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(w3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


def build() -> DigitsResNet:
    """The trained model (weights shipped next to this file; `python train.py` recreates them)."""
    model = DigitsResNet()
    model.load_state_dict(torch.load(WEIGHTS, map_location="cpu", weights_only=True))
    return model.eval()


def build_untrained(seed: int = 0) -> DigitsResNet:
    torch.manual_seed(seed)
    return DigitsResNet().eval()
