"""The ResNet-18-shaped net several benchmarks time (quantization, gate cost, memory), written once.

Random weights with a fixed seed: these benchmarks measure latency, size, memory and timing cost,
for which a trained net's accuracy does not matter, and random weights need no download.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def resnet18(extra: int = 0) -> Any:
    """ResNet-18 layout (BasicBlocks 2-2-2-2, widths 64-512, 1000 classes), random init with a fixed seed.

    ``extra`` adds that many identity 3x3 convolutions (each followed by ReLU) after the max-pool: the
    same function with more work, which the gate-cost benchmark uses to make a slower model of the
    same outputs (after ReLU and max-pool the activations are >= 0, so ReLU(identity(x)) == x).
    """
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.down: nn.Module = nn.Identity()
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(self.bn2(self.conv2(y)) + self.down(x))

    def identity_conv() -> nn.Conv2d:
        conv = nn.Conv2d(64, 64, 3, 1, 1, bias=False)
        with torch.no_grad():
            conv.weight.zero_()
            conv.weight[:, :, 1, 1] = torch.eye(64)
        return conv

    class ResNet18(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            stem: list[nn.Module] = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                                     nn.MaxPool2d(3, 2, 1)]
            for _ in range(extra):
                stem += [identity_conv(), nn.ReLU()]
            self.stem = nn.Sequential(*stem)
            blocks, cin = [], 64
            for cout, stride in [(64, 1), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1)]:
                blocks.append(Block(cin, cout, stride))
                cin = cout
            self.blocks = nn.Sequential(*blocks)
            self.fc = nn.Linear(512, 1000)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.blocks(self.stem(x))
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    torch.manual_seed(0)
    return ResNet18().eval()


def tiny_convnet() -> Any:
    """The smoke runs' stand-in for :func:`resnet18`: three convolutions and a Linear at 3x32x32 (seconds to build,
    quantize and time), random init with a fixed seed."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2, padding=1),
                         nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(32, 10)).eval()


def random_images(samples: int, shape: tuple[int, int, int] = (3, 224, 224)) -> tuple[np.ndarray, None]:
    """Unlabeled calibration inputs for the random-init net (its accuracy is meaningless; its latency is not)."""
    rng = np.random.default_rng(0)
    return rng.standard_normal((samples, *shape)).astype(np.float32), None
