"""A small digits CNN for the ExecuTorch tests (8x8 inputs, trained in about a second, cached per process)."""

from __future__ import annotations

import torch
from torch import nn

_STATE: dict[str, dict[str, torch.Tensor]] = {}


class DigitsCnn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1, stride=2)
        self.fc = nn.Linear(32 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.conv2(x))
        return self.fc(torch.flatten(x, 1))


def trained() -> nn.Module:
    """The CNN trained on scikit-learn's digits (8x8, scaled to [0, 1]) for 60 full-batch Adam steps."""
    from sklearn.datasets import load_digits

    model = DigitsCnn()
    if "w" not in _STATE:
        torch.manual_seed(0)
        digits = load_digits()
        x = torch.tensor(digits.images[:1200] / 16.0, dtype=torch.float32).unsqueeze(1)
        y = torch.tensor(digits.target[:1200])
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        model.train()
        for _ in range(60):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        _STATE["w"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(_STATE["w"])
    return model.eval()
