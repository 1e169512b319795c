"""Train the QAT example's MobileNet-style model and save its weights (1-4 minutes on two shared cores).

    python examples/qat/train.py

Deterministic (fixed seeds, one thread order); the shipped ``digits_mobilenet.pt`` came from this script.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from edgecraft.datasets import load_dataset
from edgecraft.plugins.datasets.digits import DigitsParams
from torch import nn

try:
    from model import WEIGHTS, DigitsMobileNet
except ImportError:  # run as a module from the repository root
    from examples.qat.model import WEIGHTS, DigitsMobileNet


def train(epochs: int = 8, seed: int = 0) -> tuple[DigitsMobileNet, float]:
    torch.manual_seed(seed)
    np.random.seed(seed)
    train_set = load_dataset("train", DigitsParams(split="train"), base_dir=WEIGHTS.parent)
    test_set = load_dataset("test", DigitsParams(split="test"), base_dir=WEIGHTS.parent)
    x, y = torch.from_numpy(train_set.x), torch.from_numpy(train_set.y)
    model = DigitsMobileNet()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    steps_per_epoch = (len(x) + 63) // 64
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=epochs * steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x))
        total = 0.0
        for start in range(0, len(x), 64):
            idx = order[start:start + 64]
            batch = x[idx]
            # light augmentation: random shifts of up to 2 pixels
            shift = tuple(int(v) for v in torch.randint(-2, 3, (2,)))
            batch = torch.roll(batch, shifts=shift, dims=(2, 3))
            optimizer.zero_grad()
            loss = loss_fn(model(batch), y[idx])
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            acc = float((model(torch.from_numpy(test_set.x)).argmax(1).numpy() == test_set.y).mean())
        print(f"epoch {epoch + 1}/{epochs} loss {total / len(x):.4f} test top1 {acc:.4f}")
    return model, acc


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    start = time.time()
    model, acc = train(args.epochs)
    torch.save(model.state_dict(), WEIGHTS)
    print(f"saved {WEIGHTS} (test top1 {acc:.4f}) in {time.time() - start:.0f} s")
