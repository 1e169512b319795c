"""The QAT example's model: a small depthwise-separable (MobileNet-style) CNN for scikit-learn's digits.

Why this net: depthwise 3×3 convolutions have one 9-weight filter per channel, and once BatchNorm is folded
into them their channels' weight ranges differ by orders of magnitude; with one int8 scale per tensor (what
older NPUs/DSPs and many int8 kernels support) post-training quantization loses accuracy on them (the
classic MobileNet finding), while fine-tuning with the quantization simulated in the loop recovers it.
Plain ReLU (unbounded, unlike MobileNet's ReLU6) leaves the activation ranges wide as well. BatchNorm after
every convolution, a linear classifier after pooling. Measured on the bundled weights (ONNX Runtime, 128
calibration samples): fp32 96.7% top-1, post-training int8 per-tensor 95.6% (-1.1 points), per-channel
96.4% (-0.3): the example therefore quantizes per tensor (see plan.yaml and benchmarks/qat.py).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

WEIGHTS = Path(__file__).with_name("digits_mobilenet.pt")
INPUT_SHAPE = (1, 1, 32, 32)


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU())


class Separable(nn.Module):
    """A depthwise 3×3 convolution then a pointwise 1×1 one, each with BatchNorm and ReLU."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.depthwise = conv_bn(cin, cin, 3, stride, groups=cin)
        self.pointwise = conv_bn(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class DigitsMobileNet(nn.Module):
    def __init__(self, widths: tuple[int, ...] = (16, 32, 32, 64, 64), num_classes: int = 10) -> None:
        super().__init__()
        self.stem = conv_bn(1, widths[0], 3)
        strides = (2, 1, 2, 1)
        self.blocks = nn.Sequential(*[Separable(widths[i], widths[i + 1], strides[i]) for i in range(len(widths) - 1)])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


def build() -> DigitsMobileNet:
    """The trained model (weights shipped next to this file; `python train.py` recreates them)."""
    model = DigitsMobileNet()
    model.load_state_dict(torch.load(WEIGHTS, map_location="cpu", weights_only=True))
    return model.eval()
