"""Small trained digits CNNs for the quantization tests (8×8 inputs, trained once per process in about a second).

``sensitive()`` is the same network with one deliberately quantization-sensitive layer: output
channel 0 of ``conv2`` is scaled up by ``SCALE`` and ``conv3`` reads it scaled down by the same
factor. Through the ReLU in between the function is unchanged (ReLU(k·z) = k·ReLU(z)), but the
activation feeding ``conv3`` now spans a range ``SCALE`` times wider in one channel, so a per-tensor
int8 scale leaves the other channels a handful of levels: quantizing ``conv3``'s input ruins
accuracy, and returning ``conv3`` to float restores it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

SIZE = 8
SCALE = 2000.0
_CACHE: dict[str, dict[str, torch.Tensor]] = {}


class SmallCnn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1, stride=2)
        self.conv3 = nn.Conv2d(32, 32, 3, padding=1)
        self.fc = nn.Linear(32 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        x = torch.relu(self.conv3(x))
        return self.fc(torch.flatten(x, 1))


def digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    from edgecraft.datasets import load_dataset
    from edgecraft.plugins.datasets.digits import DigitsParams as DigitsDataset

    data = load_dataset(split, DigitsDataset(split=split, image_size=SIZE), base_dir=Path(__file__).parent)
    assert data.y is not None
    return data.x, data.y


def _trained_state() -> dict[str, torch.Tensor]:
    if "plain" not in _CACHE:
        # One thread: on a shared 2-core machine, two spinning threads made this 13x slower (60 s vs 4.6 s).
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        torch.manual_seed(0)
        x, y = digits("train")
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        model = SmallCnn()
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        for _ in range(6):
            order = torch.randperm(len(xt))
            for start in range(0, len(xt), 64):
                idx = order[start:start + 64]
                optimizer.zero_grad()
                nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
                optimizer.step()
        _CACHE["plain"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        torch.set_num_threads(threads)
    return _CACHE["plain"]


def plain() -> SmallCnn:
    model = SmallCnn()
    model.load_state_dict(_trained_state())
    return model.eval()


def sensitive() -> SmallCnn:
    model = plain()
    with torch.no_grad():
        model.conv2.weight[0] *= SCALE
        model.conv2.bias[0] *= SCALE
        model.conv3.weight[:, 0] /= SCALE
    return model.eval()


def untrained() -> SmallCnn:
    """For compile-time tests: nothing is built, so no training is needed."""
    torch.manual_seed(0)
    return SmallCnn().eval()
