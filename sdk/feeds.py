"""Data as feeds: a dataset's arrays bound to a model's inputs, sliced into batches the model accepts.

A dataset holds arrays with the sample axis first (``ids: (n, 64)``, ``state: (n, 2, 128)``,
``sr: (n,)``). Binding it to a :class:`~edgecraft.modelio.ModelIO` decides, once and at compile
time, which array feeds which input (an explicit ``inputs:`` mapping, else an array named like the
input, else the only array for the only input), checks every sample's shape and dtype, and then
turns any range of samples into the model's feeds: the sample axis moved to the input's batch
axis (so recurrent state ``[2, batch, 128]`` is fed correctly), or, for an input without a batch
axis (a 0-d sample rate), one sample per call. Outputs are gathered back sample-first, so metrics
never see a model's layout.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
from edgecraft.errors import InputError
from edgecraft.modelio import ModelIO, TensorSpec, dtype_kind


@dataclass(frozen=True)
class InputFeed:
    """How one model input is fed: from which array, and how a sample is laid out."""

    spec: TensorSpec
    key: str
    #: True when each stored sample already carries the model's batch axis of size 1.
    sample_has_batch: bool


def _fit(spec: TensorSpec, key: str, array: np.ndarray, dataset: str) -> InputFeed:
    where = f"dataset {dataset!r}, array {key!r} (feeds input {spec.name!r})"
    if array.dtype == object:
        raise InputError(f"{where}: holds Python objects (dtype object), not numbers")
    kind_have, kind_want = dtype_kind(str(array.dtype)), dtype_kind(spec.dtype)
    if kind_have != kind_want and not (kind_want == "int" and kind_have == "bool"):
        raise InputError(f"{where}: dtype {array.dtype} but the model's input is {spec.dtype}",
                         hint="integer inputs (token ids, masks) need integer data; float inputs need float data")
    sample = tuple(array.shape[1:])
    expected = spec.sample_shape()
    if sample == expected:
        return InputFeed(spec, key, sample_has_batch=False)
    if spec.batch_axis is not None:
        with_batch = list(expected)
        with_batch.insert(spec.batch_axis, 1)
        if sample == tuple(with_batch):
            return InputFeed(spec, key, sample_has_batch=True)
    raise InputError(f"{where}: samples have shape {list(sample)} but the input takes {list(expected)} per sample "
                     f"(input shape {list(spec.shape)}, batch axis {spec.batch_axis})",
                     hint="the first axis of every array is the sample axis; fix the data or model.inputs")


def bind(io: ModelIO, arrays: Mapping[str, np.ndarray], mapping: Mapping[str, str], *, dataset: str) -> list[InputFeed]:
    """Decide which array feeds each input; a model input no array feeds is an error naming it."""
    unknown = sorted(set(mapping) - set(io.input_names))
    if unknown:
        raise InputError(f"data.{dataset}.inputs: {unknown} are not inputs of the model; its inputs: {io.input_names}")
    feeds: list[InputFeed] = []
    unfed: list[str] = []
    for spec in io.inputs:
        if spec.name in mapping:
            key = mapping[spec.name]
            if key not in arrays:
                raise InputError(f"data.{dataset}.inputs.{spec.name} = {key!r}: no such array in the dataset; "
                                 f"its arrays: {sorted(arrays)}")
        elif spec.name in arrays:
            key = spec.name
        elif len(io.inputs) == 1 and len(arrays) == 1:
            key = next(iter(arrays))
        else:
            unfed.append(spec.name)
            continue
        feeds.append(_fit(spec, key, arrays[key], dataset))
    if unfed:
        raise InputError(f"dataset {dataset!r} feeds no data to model input(s) {unfed}; its arrays: {sorted(arrays)}",
                         hint=f"name arrays like the inputs, or map them: data.{dataset}.inputs: "
                              f"{{{unfed[0]}: ARRAY_KEY}}")
    return feeds


class BoundData:
    """A dataset bound to one model's inputs: feeds for any slice of samples, outputs gathered sample-first."""

    def __init__(self, io: ModelIO, arrays: Mapping[str, np.ndarray], feeds: list[InputFeed], n: int,
                 labels: np.ndarray | None, name: str) -> None:
        self.io = io
        self.arrays = arrays
        self.inputs = feeds
        self.n = n
        self.labels = labels
        self.name = name

    def __len__(self) -> int:
        return self.n

    @property
    def max_batch(self) -> int | None:
        """None: any batch; else the model takes at most this many samples per call."""
        return self.io.max_batch

    def effective_batch(self, wanted: int) -> int:
        limit = self.max_batch
        return wanted if limit is None else max(1, min(wanted, limit))

    def feeds(self, index: slice | np.ndarray) -> dict[str, np.ndarray]:
        """The model's feeds for the samples ``index`` selects (dtypes cast within their kind)."""
        out: dict[str, np.ndarray] = {}
        for feed in self.inputs:
            block = np.asarray(self.arrays[feed.key][index])
            spec = feed.spec
            if block.dtype != np.dtype(spec.dtype):
                block = block.astype(spec.dtype)
            if spec.batch_axis is None:
                if block.shape[0] != 1 and not np.all(block == block[:1]):
                    raise InputError(f"input {spec.name!r} has no batch axis: feed one sample per call")
                value = np.array(block[0])  # 0-d stays 0-d (ascontiguousarray would make it 1-d)
            elif feed.sample_has_batch:
                value = np.concatenate(list(block), axis=spec.batch_axis)
            else:
                value = np.moveaxis(block, 0, spec.batch_axis)
            out[spec.name] = value if value.ndim == 0 or value.flags.c_contiguous else np.ascontiguousarray(value)
        return out

    def batches(self, batch_size: int) -> Iterator[tuple[slice, dict[str, np.ndarray]]]:
        batch = self.effective_batch(batch_size)
        for start in range(0, self.n, batch):
            index = slice(start, min(start + batch, self.n))
            yield index, self.feeds(index)


def output_batch_axis(spec: TensorSpec | None, batch: int, array: np.ndarray) -> int | None:
    """Which axis of an output carries samples (from its spec; else the first axis of matching size)."""
    if spec is not None and spec.batch_axis is not None and spec.batch_axis < array.ndim:
        return spec.batch_axis
    if array.ndim and array.shape[0] == batch:
        return 0
    return None


def samples_first(outputs: list[np.ndarray], io: ModelIO, batch: int) -> list[np.ndarray]:
    """Each output with its batch axis moved first (a leading axis added when it has none and batch is 1)."""
    result = []
    for i, array in enumerate(outputs):
        array = np.asarray(array)
        spec = io.outputs[i] if i < len(io.outputs) else None
        axis = output_batch_axis(spec, batch, array)
        if axis is None or array.shape[axis] != batch:
            if batch != 1:
                raise InputError(f"output {spec.name if spec else i!r} has no axis of size {batch} (the batch)")
            result.append(array[None])
        else:
            result.append(np.moveaxis(array, axis, 0))
    return result
