"""Train the bundled digits model and save its weights (about a minute on two cores).

    python examples/digits/train.py

Deterministic (fixed seeds, one thread order); the shipped ``digits_resnet.pt`` came from this script.
:func:`fit_digits` is the loop every digits example trains with (``examples/qat/train.py`` uses it too),
so the examples' float models are trained the same way and differ only in architecture.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from edgecraft.datasets import load_dataset
from edgecraft.plugins.datasets.digits import DigitsParams
from torch import nn


def fit_digits(model: nn.Module, epochs: int, seed: int = 0, base_dir: Path | None = None) -> float:
    """Train ``model`` on the digits train split (AdamW, one-cycle schedule, ±2 px shifts); return test top-1."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    base = base_dir or Path(__file__).parent
    train_set = load_dataset("train", DigitsParams(split="train"), base_dir=base)
    test_set = load_dataset("test", DigitsParams(split="test"), base_dir=base)
    x, y = torch.from_numpy(train_set.x), torch.from_numpy(train_set.y)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    steps_per_epoch = (len(x) + 63) // 64
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=epochs * steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss()
    acc = 0.0
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
    return acc


def main(build_untrained: type[nn.Module], weights: Path, default_epochs: int) -> None:
    """Command line shared by the digits examples: train, save the weights next to the model, say how it went."""
    parser = argparse.ArgumentParser(description=f"Train {build_untrained.__name__} on digits and save {weights.name}.")
    parser.add_argument("--epochs", type=int, default=default_epochs)
    args = parser.parse_args()
    start = time.time()
    model = build_untrained()
    acc = fit_digits(model, args.epochs, base_dir=weights.parent)
    torch.save(model.state_dict(), weights)
    print(f"saved {weights} (test top1 {acc:.4f}) in {time.time() - start:.0f} s")


if __name__ == "__main__":
    try:
        from model import WEIGHTS, DigitsResNet
    except ImportError:  # run as a module from the repository root
        from examples.digits.model import WEIGHTS, DigitsResNet
    main(DigitsResNet, WEIGHTS, default_epochs=12)
