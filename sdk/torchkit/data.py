"""Batches for torch: a dataset bound to a model's I/O, as ``(inputs in io order, labels)``.

Binding (:meth:`edgecraft.datasets.Dataset.bind`) already decides which array feeds which input,
checks shapes and dtypes, and moves the sample axis to each input's batch axis. This module only
turns those feeds into tensors, in the order ``module(*inputs)`` takes them, over a seeded
permutation of the samples (torch's ``DataLoader`` would add worker processes and collation for
data that is already in memory as arrays, so the few lines are written here).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from edgecraft.errors import InputError
from edgecraft.modelio import ModelIO, TensorSpec

if TYPE_CHECKING:
    from edgecraft.context import RunContext
    from edgecraft.feeds import BoundData


@dataclass
class Batch:
    """One batch: the model's inputs (io order), labels (int64) or None, and the samples' positions.

    ``index`` holds positions in the *bound* data (not in a subset of it), so per-sample caches
    (a teacher's outputs) can be shared between a training split and its validation split.
    """

    inputs: list[torch.Tensor]
    labels: torch.Tensor | None
    index: np.ndarray
    #: The inputs were changed by an augmentation: cached per-sample outputs no longer apply.
    augmented: bool = False
    #: The bound data ``index`` refers to (keys per-sample caches).
    source: Any = None
    #: Sequence inputs were cut to the batch's longest sample (:meth:`TorchData.trimmed`): per-sample outputs
    #: cached at the full length no longer have this batch's shapes.
    trimmed: bool = False

    def __len__(self) -> int:
        return len(self.index)

    def __iter__(self) -> Iterator[Any]:
        """``inputs, labels = batch``."""
        yield self.inputs
        yield self.labels


class TorchData:
    """Samples of a :class:`BoundData` (all, or the subset ``indices``) as torch batches."""

    def __init__(self, bound: BoundData, indices: np.ndarray | None = None) -> None:
        self.bound = bound
        self.io = bound.io
        self.indices = np.arange(len(bound)) if indices is None else np.asarray(indices, dtype=np.int64)

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray] | np.ndarray, labels: np.ndarray | None = None, *,
                    io: ModelIO | None = None, name: str = "data") -> TorchData:
        """Arrays (sample axis first) bound to ``io`` (default: one input per array, batch axis 0)."""
        from edgecraft.datasets import make_dataset

        named = {"input": arrays} if isinstance(arrays, np.ndarray) else dict(arrays)
        dataset = make_dataset(name, named, labels)
        return cls(dataset.bind(io or io_for_arrays(dataset.arrays)))

    @property
    def name(self) -> str:
        return self.bound.name

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def labeled(self) -> bool:
        return self.bound.labels is not None

    @property
    def labels(self) -> torch.Tensor | None:
        """Labels of the selected samples (int64), or None."""
        if self.bound.labels is None:
            return None
        return torch.from_numpy(np.ascontiguousarray(self.bound.labels[self.indices])).long()

    def subset(self, positions: np.ndarray | slice) -> TorchData:
        """The samples at ``positions`` of this selection."""
        return TorchData(self.bound, self.indices[positions])

    def take(self, n: int) -> TorchData:
        return self.subset(slice(0, n))

    def split(self, fraction: float, seed: int) -> tuple[TorchData, TorchData | None]:
        """(train, validation): a seeded ``fraction`` held out; no split when it would leave either side empty."""
        n_val = round(len(self) * fraction)
        if fraction <= 0 or n_val < 1 or n_val >= len(self):
            return self, None
        order = np.random.RandomState(seed).permutation(len(self))
        return self.subset(np.sort(order[n_val:])), self.subset(np.sort(order[:n_val]))

    def batch(self, positions: np.ndarray) -> Batch:
        """The samples at ``positions`` (of this selection) as one batch."""
        index = self.indices[positions]
        feeds = self.bound.feeds(index)
        inputs = [torch.from_numpy(np.ascontiguousarray(feeds[spec.name])) for spec in self.io.inputs]
        labels = None if self.bound.labels is None else torch.from_numpy(self.bound.labels[index]).long()
        return Batch(inputs, labels, index, source=self.bound)

    def batches(self, batch_size: int, *, shuffle: bool = False,
                generator: torch.Generator | None = None, seed: int | None = None,
                trim: bool = False) -> Iterator[Batch]:
        """Batches of at most ``batch_size`` samples (fewer if the model fixes its batch size).

        ``shuffle`` draws the order from ``generator`` (or a fresh one seeded with ``seed``), so the
        same seed gives the same batches. ``trim`` (token inputs with an ``attention_mask``, see
        :meth:`padding_mask`): each batch's sequence inputs are cut to its longest sample, and when
        shuffling, samples of similar length are batched together (shuffled within groups of 16
        batches, then the batches shuffled), so little compute goes to padding.
        """
        size = self.bound.effective_batch(batch_size)
        trim = trim and self.padding_mask() is not None
        if shuffle:
            gen = generator if generator is not None else torch.Generator().manual_seed(seed or 0)
            order = torch.randperm(len(self), generator=gen).numpy()
        else:
            order = np.arange(len(self))
        groups = [order[start:start + size] for start in range(0, len(order), size)]
        if shuffle and trim:
            groups = self._grouped_by_length(order, size, gen)
        for positions in groups:
            batch = self.batch(positions)
            yield self.trimmed(batch) if trim else batch

    # ---------------------------------------------------------------- padding (token inputs)
    def padding_mask(self) -> int | None:
        """Position of an ``attention_mask`` input of shape [batch, sequence] (Hugging Face's name for the
        padding mask), or None: then there is nothing to trim."""
        for i, spec in enumerate(self.io.inputs):
            if spec.name == "attention_mask" and spec.batch_axis == 0 and len(spec.shape) == 2:
                return i
        return None

    def lengths(self, positions: np.ndarray) -> np.ndarray:
        """Real (unpadded) length of the samples at ``positions``: the last non-zero mask position + 1."""
        mask_index = self.padding_mask()
        assert mask_index is not None
        mask = self.bound.feeds(self.indices[positions])[self.io.inputs[mask_index].name]
        nonzero = np.asarray(mask) != 0
        return np.where(nonzero.any(axis=1), nonzero.shape[1] - np.argmax(nonzero[:, ::-1], axis=1), 0)

    def trimmed(self, batch: Batch) -> Batch:
        """``batch`` with every [batch, sequence] input cut to the longest real sample.

        Exact for attention models that mask padding (BERT family): real tokens never attend to
        padding, so their outputs, and masked mean pooling, do not depend on how much padding follows.
        """
        mask_index = self.padding_mask()
        if mask_index is None:
            return batch
        mask = batch.inputs[mask_index]
        full = mask.shape[1]
        nonzero = (mask != 0).any(dim=0).nonzero()
        length = int(nonzero.max()) + 1 if len(nonzero) else 1
        if length >= full:
            return batch
        inputs = [t[:, :length].contiguous() if t.dim() == 2 and t.shape[1] == full else t for t in batch.inputs]
        return Batch(inputs, batch.labels, batch.index, augmented=batch.augmented, source=batch.source, trimmed=True)

    def _grouped_by_length(self, order: np.ndarray, size: int, generator: torch.Generator) -> list[np.ndarray]:
        """``order`` regrouped so each batch holds samples of similar length (the usual "group by length"
        sampler of transformer training): within chunks of 16 batches, sort by length, cut into batches,
        then shuffle the batches."""
        lengths = self.lengths(np.arange(len(self)))
        chunk = size * 16
        groups: list[np.ndarray] = []
        for start in range(0, len(order), chunk):
            part = order[start:start + chunk]
            part = part[np.argsort(-lengths[part], kind="stable")]
            groups.extend(part[i:i + size] for i in range(0, len(part), size))
        return [groups[i] for i in torch.randperm(len(groups), generator=generator).numpy()]

    def __iter__(self) -> Iterator[Batch]:
        return self.batches(64)

    def sample_inputs(self, n: int = 2) -> list[torch.Tensor]:
        """The first ``n`` samples as inputs (a probe batch of real data)."""
        return self.batch(np.arange(min(n, len(self)))).inputs


def step_data(ctx: RunContext, name: str, field: str) -> TorchData:
    """Plan dataset ``name`` as training batches for the running step; a dataset that does not fit the
    model is an error naming the step and ``params.<field>`` (the plan line to fix)."""
    try:
        return TorchData(ctx.feeds(name))
    except InputError as exc:
        raise InputError(f"step {ctx.step.where}: params.{field}: {exc.message}", hint=exc.hint) from None


def io_for_arrays(arrays: Mapping[str, np.ndarray]) -> ModelIO:
    """The I/O of a model fed one input per array (named like it), batch axis 0 (scripts and tests)."""
    specs = tuple(TensorSpec(key, str(array.dtype), ("batch", *array.shape[1:]), 0) for key, array in arrays.items())
    return ModelIO(specs, (TensorSpec("output", "float32", ("batch",), 0),))


def example_inputs(io: ModelIO, batch: int = 1, *, device: str | torch.device | None = None) -> list[torch.Tensor]:
    """Stand-in inputs of ``io`` (zeros for floats, ones for integers), optionally on ``device`` (e.g. meta)."""
    from edgecraft.models import TorchModel

    tensors = TorchModel(torch.nn.Identity(), io).example_inputs(batch)
    return tensors if device is None else [t.to(device) for t in tensors]


def outputs_of(result: Any) -> tuple[torch.Tensor, ...]:
    """A forward's result as a tuple of tensors (a single tensor, a tuple/list, or a dict's values)."""
    if isinstance(result, torch.Tensor):
        return (result,)
    if isinstance(result, Mapping):
        result = list(result.values())
    if isinstance(result, Sequence) and all(isinstance(r, torch.Tensor) for r in result):
        return tuple(result)
    raise InputError(f"the model returns {type(result).__name__}; edgecraft needs a tensor or a tuple of tensors")


def first_output(result: Any, index: int = 0) -> torch.Tensor:
    """Output ``index`` of a forward's result (``io.output_index(plan.evaluation.output)``; default the first)."""
    outputs = outputs_of(result)
    if index >= len(outputs):
        raise InputError(f"output {index} was asked for but the model returns {len(outputs)} output(s)")
    return outputs[index]
