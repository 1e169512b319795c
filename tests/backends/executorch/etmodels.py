"""A small digits CNN for the ExecuTorch tests (8x8 inputs, trained in about a second, cached per process)."""

from __future__ import annotations

from pathlib import Path

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


def _state() -> dict[str, torch.Tensor]:
    if "w" not in _STATE:
        from edgecraft.datasets import load_dataset
        from edgecraft.plugins.datasets.digits import DigitsParams

        # The model source may build the factory under a meta-device context (cheap compile-time loads): train
        # on the CPU whatever the caller's default device is. One thread: the machine is shared.
        with torch.device("cpu"):
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            torch.manual_seed(0)
            data = load_dataset("train", DigitsParams(split="train", image_size=8), base_dir=Path(__file__).parent)
            assert data.y is not None
            x, y = torch.from_numpy(data.x), torch.from_numpy(data.y)
            model = DigitsCnn()
            opt = torch.optim.Adam(model.parameters(), lr=3e-3)
            model.train()
            for _ in range(5):
                order = torch.randperm(len(x))
                for start in range(0, len(x), 64):
                    idx = order[start:start + 64]
                    opt.zero_grad()
                    nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
                    opt.step()
            _STATE["w"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
            torch.set_num_threads(threads)
    return _STATE["w"]


def trained() -> nn.Module:
    """The CNN trained on the digits dataset kind at 8x8 (5 epochs, about a second)."""
    model = DigitsCnn()
    model.load_state_dict(_state())
    return model.eval()
