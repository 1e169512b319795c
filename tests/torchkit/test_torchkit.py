"""The SDK's shared torch service: batches keep dtypes, a two-input model (float + int64 ids through an
embedding) trains, evaluates and is costed, early stopping stops, and the teacher cache is reused."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from edgecraft import torchkit
from edgecraft.modelio import ModelIO, TensorSpec
from torch import nn

N, FEATURES, TOKENS, VOCAB, CLASSES = 96, 6, 5, 30, 3


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class TwoInputs(nn.Module):
    """Float features plus token ids (int64, looked up in an embedding): a minimal multi-input model."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 8)
        self.dense = nn.Linear(FEATURES, 8)
        self.head = nn.Linear(8, CLASSES)

    def forward(self, features: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.dense(features) + self.embed(ids).mean(dim=1)))


IO = ModelIO((TensorSpec("features", "float32", ("batch", FEATURES), 0),
              TensorSpec("ids", "int64", ("batch", TOKENS), 0)),
             (TensorSpec("logits", "float32", ("batch", CLASSES), 0),))


def _data(seed: int = 0, *, noisy_labels: bool = False) -> torchkit.TorchData:
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((N, FEATURES)).astype(np.float32)
    ids = rng.integers(0, VOCAB, (N, TOKENS)).astype(np.int64)
    labels = (ids[:, 0] % CLASSES) if not noisy_labels else rng.integers(0, CLASSES, N)
    return torchkit.TorchData.from_arrays({"ids": ids, "features": features}, labels, io=IO)


def test_batches_follow_io_order_keep_dtypes_and_are_seeded() -> None:
    data = _data()
    batch = next(data.batches(16, shuffle=True, seed=3))
    assert [t.dtype for t in batch.inputs] == [torch.float32, torch.int64]  # io order, ids stay ids
    assert [tuple(t.shape) for t in batch.inputs] == [(16, FEATURES), (16, TOKENS)]
    assert batch.labels is not None and batch.labels.dtype == torch.int64
    again = next(data.batches(16, shuffle=True, seed=3))
    assert np.array_equal(batch.index, again.index)
    assert not np.array_equal(batch.index, next(data.batches(16, shuffle=True, seed=4)).index)
    inputs, labels = batch  # unpacks as (inputs, labels)
    assert inputs is batch.inputs and labels is batch.labels
    seen = np.concatenate([b.index for b in data.batches(40, shuffle=True, seed=1)])
    assert sorted(seen.tolist()) == list(range(N))


def test_two_input_model_trains_evaluates_and_counts_macs() -> None:
    torch.manual_seed(0)
    model = TwoInputs()
    data = _data()
    before = torchkit.evaluate(model, data)["accuracy"]
    result = torchkit.train(model, data, torchkit.CrossEntropy(),
                            torchkit.TrainConfig(epochs=30, lr=0.03, batch_size=32, seed=1))
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    metrics = torchkit.evaluate(model, data, teacher=model)
    assert metrics["accuracy"] > max(before, 0.8)
    assert metrics["agreement"] == 1.0 and metrics["cosine"] == pytest.approx(1.0)
    total, per_layer = torchkit.count_macs(model, torchkit.example_inputs(IO, 1))
    assert per_layer["dense"] == FEATURES * 8 and per_layer["head"] == 8 * CLASSES
    assert total == FEATURES * 8 + 8 * CLASSES  # an embedding lookup is no multiply-accumulate
    assert torchkit.model_cost(model, torchkit.example_inputs(IO, 1)).params == torchkit.count_params(model)


def test_same_seed_same_weights() -> None:
    weights = []
    for _ in range(2):
        torch.manual_seed(0)
        model = TwoInputs()
        torchkit.train(model, _data(), torchkit.CrossEntropy(), torchkit.TrainConfig(epochs=2, seed=5))
        weights.append(model.head.weight.detach().clone())
    assert torch.equal(weights[0], weights[1])


def test_early_stopping_stops_and_restores_the_best_epoch() -> None:
    torch.manual_seed(0)
    model = TwoInputs()
    config = torchkit.TrainConfig(epochs=60, lr=0.05, batch_size=16, patience=2, seed=0)
    result = torchkit.train(model, _data(), torchkit.CrossEntropy(), config, validation=_data(1, noisy_labels=True))
    assert result.stopped_early and len(result.history) < 60 and result.monitor == "accuracy"
    assert result.best_value == max(row["val_accuracy"] for row in result.history)  # type: ignore[type-var]
    assert torchkit.top1(model, _data(1, noisy_labels=True)) == pytest.approx(result.best_value)


def test_teacher_match_caches_teacher_outputs_and_accumulates_gradients() -> None:
    torch.manual_seed(0)
    teacher_model, student = TwoInputs(), TwoInputs()
    calls = []
    teacher_model.register_forward_hook(lambda _m, inputs, _o: calls.append(len(inputs[0])))
    teacher = torchkit.Teacher(teacher_model)
    objective = torchkit.TeacherMatch(teacher, kind="kl", temperature=2.0, alpha=None)
    result = torchkit.train(student, _data(), objective, torchkit.TrainConfig(epochs=3, batch_size=32))
    assert sum(calls) == N and teacher.cached  # one pass over the data, then the cache
    assert not result.used_labels and result.history[-1]["hard_loss"] is None
    used = torchkit.accumulate_gradients(student, _data(), objective, batches=2, batch_size=16, seed=0)
    assert used == 32 and student.head.weight.grad is not None


def test_several_outputs_read_the_one_asked_for() -> None:
    class Both(TwoInputs):
        def forward(self, features: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            logits = super().forward(features, ids)
            return features.sum(dim=1, keepdim=True), logits

    torch.manual_seed(0)
    model = Both()
    result = torchkit.train(model, _data(), torchkit.CrossEntropy(output=1),
                            torchkit.TrainConfig(epochs=20, lr=0.03, batch_size=32))
    assert result.final_loss is not None and torchkit.top1(model, _data(), output=1) > 0.8
