"""The trainer's warm-up + cosine schedule (stepped per batch) and padding trimming of token batches."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from edgecraft import torchkit
from edgecraft.torchkit.data import TorchData
from edgecraft.torchkit.training import TrainConfig, make_schedule, train
from torch import nn


def test_warmup_cosine_rises_then_decays_to_zero_per_step() -> None:
    weight = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=1.0)
    schedule = make_schedule(TrainConfig(schedule="warmup_cosine", warmup=0.2, epochs=2), optimizer, 10)
    lrs = []
    for _ in range(20):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    peak = int(np.argmax(lrs))
    assert peak == 4 and lrs[peak] == pytest.approx(1.0)  # 20% of 20 steps warm up
    assert all(a < b for a, b in itertools.pairwise(lrs[:peak + 1]))
    assert all(a >= b for a, b in itertools.pairwise(lrs[peak:]))
    assert lrs[-1] < 0.05


class _Tokens(nn.Module):
    """Masked mean of token embeddings: its output does not depend on how much padding follows."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 8)
        self.scale = nn.Parameter(torch.ones(8))
        self.seen: list[int] = []

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        self.seen.append(int(input_ids.shape[1]))
        mask = attention_mask.unsqueeze(-1).float()
        return self.scale * (self.embed(input_ids) * mask).sum(1) / mask.sum(1).clamp_min(1)


def _token_data(n: int = 64, length: int = 32, seed: int = 0) -> TorchData:
    rng = np.random.default_rng(seed)
    real = rng.integers(2, length + 1, size=n)
    mask = (np.arange(length)[None, :] < real[:, None]).astype(np.int64)
    ids = rng.integers(1, 50, size=(n, length)).astype(np.int64) * mask
    return TorchData.from_arrays({"input_ids": ids, "attention_mask": mask})


def test_trimmed_batches_are_grouped_by_length_and_cover_every_sample_once() -> None:
    data = _token_data()
    batches = list(data.batches(8, shuffle=True, seed=3, trim=True))
    seen = np.sort(np.concatenate([b.index for b in batches]))
    assert np.array_equal(seen, np.arange(64))
    lengths = data.lengths(np.arange(64))
    for batch in batches:
        width = batch.inputs[0].shape[1]
        assert width == lengths[batch.index].max()  # cut to the longest sample, no further
        assert batch.trimmed == (width < 32)
    # Grouped by length: far less padding than random batches of the same size.
    padded = sum(b.inputs[0].shape[1] * len(b) for b in batches)
    random_padded = sum(lengths[b.index].max() * len(b) for b in data.batches(8, shuffle=True, seed=3))
    assert padded < 0.8 * random_padded


def test_data_without_an_attention_mask_is_never_trimmed() -> None:
    data = TorchData.from_arrays(np.zeros((10, 4), dtype=np.float32))
    assert data.padding_mask() is None
    assert all(b.inputs[0].shape == (len(b), 4) and not b.trimmed for b in data.batches(4, shuffle=True, trim=True))


def test_training_on_trimmed_batches_matches_the_padded_outputs() -> None:
    torch.manual_seed(0)
    data = _token_data()
    teacher, student = _Tokens(), _Tokens()
    full = torchkit.predict(teacher, data)
    trimmed = torch.cat([teacher(*b.inputs) for b in data.batches(8, shuffle=True, seed=1, trim=True)])
    order = np.concatenate([b.index for b in data.batches(8, shuffle=True, seed=1, trim=True)])
    assert torch.allclose(trimmed, full[order], atol=1e-6)
    objective = torchkit.TeacherMatch(torchkit.Teacher(teacher), kind="cosine")
    config = TrainConfig(epochs=3, batch_size=8, lr=0.05, optimizer="adamw", schedule="warmup_cosine",
                         trim_padding=True)
    student.seen.clear()
    result = train(student, data, objective, config)
    assert min(student.seen) < 32  # the student saw cut batches
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_frozen_parameters_stay_unchanged_and_trainable_afterwards() -> None:
    torch.manual_seed(0)
    data = _token_data()
    teacher, student = _Tokens(), _Tokens()
    before = student.embed.weight.detach().clone()
    objective = torchkit.TeacherMatch(torchkit.Teacher(teacher), kind="cosine")
    train(student, data, objective, TrainConfig(epochs=1, batch_size=16, lr=0.1, freeze=("embed.*",)))
    assert torch.equal(student.embed.weight, before)
    assert student.embed.weight.requires_grad  # only frozen while training
    train(student, data, objective, TrainConfig(epochs=1, batch_size=16, lr=0.1))
    assert not torch.equal(student.embed.weight, before)
