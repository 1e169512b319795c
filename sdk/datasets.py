"""Named datasets from the plan: scikit-learn's digits, .npz files and factories.

All sources produce the same thing, a :class:`Dataset` of float32 inputs (sample axis first) and
optional integer labels, so calibration, fine-tuning and evaluation code never cares where data
came from. Nothing is downloaded: digits ships inside scikit-learn.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from edgecraft.errors import InputError
from edgecraft.loading import load_callable
from edgecraft.plan import DatasetSpec, DigitsDataset, FactoryDataset, NpzDataset
from edgecraft.safe_text import clean_text
from edgecraft.user_code import call_user_code


@dataclass(frozen=True)
class Dataset:
    """Inputs ``x`` (float32, samples first) and optional labels ``y`` (int64)."""

    name: str
    x: np.ndarray
    y: np.ndarray | None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def labeled(self) -> bool:
        return self.y is not None

    def batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        for start in range(0, len(self), batch_size):
            stop = start + batch_size
            yield self.x[start:stop], (None if self.y is None else self.y[start:stop])

    def take(self, n: int) -> Dataset:
        return Dataset(self.name, self.x[:n], None if self.y is None else self.y[:n])

    def fingerprint(self) -> str:
        digest = hashlib.sha256(self.x.tobytes())
        digest.update(str(self.x.shape).encode())
        if self.y is not None:
            digest.update(self.y.tobytes())
        return digest.hexdigest()

    def check_fits(self, input_shape: tuple[int, ...], *, model_label: str = "the model") -> None:
        """Raise ``InputError`` if a sample's shape differs from the model input (batch axis aside)."""
        sample = tuple(self.x.shape[1:])
        expected = tuple(input_shape[1:])
        if sample != expected:
            raise InputError(
                f"dataset {self.name!r}: samples have shape {list(sample)} but {model_label} takes "
                f"{list(expected)} per sample (input shape {list(input_shape)})",
                hint="fix the dataset (or, for digits, its image_size/layout) or the model's input_shape")


def _finish(name: str, x: np.ndarray, y: np.ndarray | None, max_samples: int | None) -> Dataset:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim < 2 or x.shape[0] == 0:
        raise InputError(f"dataset {name!r}: inputs must have a sample axis and at least one sample "
                         f"(got shape {list(x.shape)})")
    if y is not None:
        y = np.asarray(y)
        if y.ndim != 1 or y.shape[0] != x.shape[0] or not np.issubdtype(y.dtype, np.integer):
            raise InputError(f"dataset {name!r}: labels must be a 1-D integer array with one label per "
                             f"sample (got shape {list(y.shape)}, dtype {y.dtype}; inputs have {x.shape[0]})")
        y = y.astype(np.int64)
    if max_samples is not None:
        x, y = x[:max_samples], (None if y is None else y[:max_samples])
    return Dataset(name, x, y)


def _load_digits(name: str, spec: DigitsDataset) -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = bunch.images.astype(np.float32) / 16.0  # (n, 8, 8), values in [0, 1]
    labels = bunch.target.astype(np.int64)
    if spec.split != "all":
        idx = np.arange(len(labels))
        train_idx, test_idx = train_test_split(idx, test_size=spec.test_fraction, random_state=spec.seed,
                                               stratify=labels)
        chosen = np.sort(train_idx if spec.split == "train" else test_idx)
        images, labels = images[chosen], labels[chosen]
    if spec.image_size != 8:
        import torch

        tensor = torch.from_numpy(images).unsqueeze(1)
        tensor = torch.nn.functional.interpolate(tensor, size=(spec.image_size, spec.image_size),
                                                 mode="bilinear", align_corners=False)
        images = tensor.squeeze(1).numpy()
    x = images[:, None, :, :] if spec.layout == "image" else images.reshape(len(images), -1)
    return _finish(name, x, labels, spec.max_samples)


def _load_npz(name: str, spec: NpzDataset, base_dir: Path) -> Dataset:
    path = (base_dir / spec.path).resolve()
    where = f"data.{name}.path"
    if not path.is_file():
        raise InputError(f"{where}: file {path} does not exist", hint="paths are relative to the plan file")
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise InputError(f"{where}: {path} is not a readable .npz file: {exc}") from exc
    with archive:
        keys = sorted(archive.files)
        if spec.inputs not in archive.files:
            raise InputError(f"data.{name}.inputs: key {spec.inputs!r} is not in {path.name} (keys: {keys})")
        if spec.labels is not None and spec.labels not in archive.files:
            raise InputError(f"data.{name}.labels: key {spec.labels!r} is not in {path.name} (keys: {keys}); "
                             "set labels: null for unlabeled data")
        try:
            x = archive[spec.inputs]
            y = archive[spec.labels] if spec.labels is not None else None
        except Exception as exc:  # object arrays (pickles are refused), a corrupt member
            raise InputError(f"{where}: {path.name} cannot be read as numeric arrays: {clean_text(exc)}",
                             hint="save plain numeric arrays (np.savez(path, inputs=x, labels=y)); object "
                                  "arrays would need pickle, which edgecraft refuses") from exc
    return _finish(name, x, y, spec.max_samples)


def _load_factory(name: str, spec: FactoryDataset, base_dir: Path) -> Dataset:
    fn = load_callable(spec.factory, base_dir, field=f"data.{name}.factory")
    result = call_user_code(fn, what=f"data.{name}.factory: {spec.factory}")
    if not (isinstance(result, tuple) and len(result) == 2):
        raise InputError(f"data.{name}.factory: {spec.factory} must return (inputs, labels_or_None), "
                         f"got {type(result).__name__}")
    return _finish(name, np.asarray(result[0]), None if result[1] is None else np.asarray(result[1]),
                   spec.max_samples)


def load_dataset(name: str, spec: DatasetSpec, base_dir: Path) -> Dataset:
    if isinstance(spec, DigitsDataset):
        return _load_digits(name, spec)
    if isinstance(spec, NpzDataset):
        return _load_npz(name, spec, base_dir)
    return _load_factory(name, spec, base_dir)


class DatasetStore:
    """Loads each named dataset of a plan at most once."""

    def __init__(self, specs: dict[str, DatasetSpec], base_dir: Path) -> None:
        self._specs = specs
        self._base_dir = base_dir
        self._loaded: dict[str, Dataset] = {}

    def names(self) -> list[str]:
        return sorted(self._specs)

    def get(self, name: str) -> Dataset:
        if name not in self._specs:
            raise InputError(f"dataset {name!r} is not defined in the plan's data (defined: {self.names() or 'none'})")
        if name not in self._loaded:
            self._loaded[name] = load_dataset(name, self._specs[name], self._base_dir)
        return self._loaded[name]
