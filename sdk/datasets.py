"""Named datasets from the plan, as plugin kinds, and the store a run shares.

Every kind (the built-in ``digits``, ``npz``, ``factory``, ``text`` and ``image-folder`` of the
``datasets`` plugin, :mod:`edgecraft.plugins.datasets`, or a third party's) produces the same thing:
a :class:`Dataset` of named arrays with the sample axis first, dtypes preserved (token ids stay
int64), plus optional integer labels. How arrays become a model's feeds is decided
by :mod:`edgecraft.feeds` when the dataset is bound to the model's I/O. Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar, runtime_checkable

import numpy as np
from edgecraft.errors import InputError
from edgecraft.feeds import BoundData, bind
from edgecraft.plan import DatasetParams

if TYPE_CHECKING:
    from edgecraft.modelio import ModelIO
    from edgecraft.registry import Registry

#: A dataset kind's own params model.
P = TypeVar("P", bound=DatasetParams)


@dataclass(frozen=True)
class Dataset:
    """Named arrays (samples first) and optional labels ``y`` (int64, one per sample)."""

    name: str
    arrays: Mapping[str, np.ndarray]
    y: np.ndarray | None
    #: Model input name -> array key, from the dataset's ``inputs:`` param (may be empty).
    mapping: Mapping[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(next(iter(self.arrays.values())).shape[0])

    @property
    def labeled(self) -> bool:
        return self.y is not None

    @property
    def x(self) -> np.ndarray:
        """The only array of a single-array dataset (image and vector data)."""
        if len(self.arrays) != 1:
            raise InputError(f"dataset {self.name!r} has several arrays ({sorted(self.arrays)}); this step reads one",
                             hint="single-input steps need a dataset with one array")
        return next(iter(self.arrays.values()))

    def bind(self, io: ModelIO) -> BoundData:
        """This dataset as feeds for a model with ``io``; errors name the input or array at fault."""
        feeds = bind(io, self.arrays, self.mapping, dataset=self.name)
        return BoundData(io, self.arrays, feeds, len(self), self.y, self.name)

    def batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """Single-array datasets: (x, y) blocks of ``batch_size`` samples."""
        x = self.x
        for start in range(0, len(self), batch_size):
            stop = start + batch_size
            yield x[start:stop], (None if self.y is None else self.y[start:stop])

    def take(self, n: int) -> Dataset:
        return self.select(slice(0, n))

    def select(self, index: slice | np.ndarray) -> Dataset:
        return Dataset(self.name, {k: v[index] for k, v in self.arrays.items()},
                       None if self.y is None else self.y[index], self.mapping)

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for key in sorted(self.arrays):
            array = np.ascontiguousarray(self.arrays[key])
            digest.update(f"{key}:{array.dtype}:{array.shape}".encode())
            digest.update(array.tobytes())
        if self.y is not None:
            digest.update(np.ascontiguousarray(self.y).tobytes())
        digest.update(repr(sorted(self.mapping.items())).encode())
        return digest.hexdigest()



def make_dataset(name: str, arrays: Mapping[str, Any], labels: Any | None, *, max_samples: int | None = None,
                 mapping: Mapping[str, str] | None = None) -> Dataset:
    """Validate arrays (one sample axis, equal lengths, numbers, finite floats) and labels into a Dataset."""
    if not arrays:
        raise InputError(f"dataset {name!r} has no arrays")
    checked: dict[str, np.ndarray] = {}
    n: int | None = None
    for key, value in arrays.items():
        array = np.asarray(value)
        if array.dtype == object or array.dtype.kind not in "biuf":
            raise InputError(f"dataset {name!r}, array {key!r}: dtype {array.dtype} is not numeric "
                             "(object and string arrays cannot be fed to a model)")
        if array.ndim < 1 or array.shape[0] == 0:
            raise InputError(f"dataset {name!r}, array {key!r}: needs a sample axis and at least one sample "
                             f"(got shape {list(array.shape)})")
        if array.dtype == np.float64:
            array = array.astype(np.float32)  # float64 data is almost always float32 data saved by numpy
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            bad = int((~np.isfinite(array)).reshape(array.shape[0], -1).any(axis=1).sum())
            raise InputError(f"dataset {name!r}, array {key!r}: {bad} sample(s) hold NaN or Inf",
                             hint="clean the data; a gate measured on non-finite inputs means nothing")
        if n is not None and array.shape[0] != n:
            raise InputError(f"dataset {name!r}: arrays have different sample counts "
                             f"({ {k: int(v.shape[0]) for k, v in checked.items()} } and {key!r}: {array.shape[0]})")
        n = int(array.shape[0])
        checked[key] = np.ascontiguousarray(array)
    y = None
    if labels is not None:
        y = np.asarray(labels)
        if y.ndim != 1 or y.shape[0] != n or not np.issubdtype(y.dtype, np.integer):
            raise InputError(f"dataset {name!r}: labels must be a 1-D integer array with one label per "
                             f"sample (got shape {list(y.shape)}, dtype {y.dtype}; inputs have {n})")
        y = y.astype(np.int64)
    dataset = Dataset(name, checked, y, dict(mapping or {}))
    return dataset.take(max_samples) if max_samples is not None else dataset


@dataclass
class DatasetContext:
    """What a dataset kind may use: the plan's folder and (lazily) the plan's model and its I/O."""

    base_dir: Path
    #: The plan's model params (e.g. a Hugging Face directory whose tokenizer a text dataset uses).
    model_params: Any = None
    #: The model's completed I/O (named inputs, dtypes, sample shapes); computed on first call.
    model_io: Callable[[], ModelIO] | None = None


class DatasetKind(ABC, Generic[P]):
    """Subclass this and register the class from ``edgecraft_register_datasets``.

    Parametrize it with the kind's params model (``class NpzKind(DatasetKind[NpzParams])``) so ``load``
    takes that model, typed: the plan loader validates a dataset's params with ``params_model`` before
    any ``load`` sees them. An unparametrized subclass gets plain :class:`~edgecraft.plan.DatasetParams`.
    """

    #: The ``data.<name>.kind`` value plans use.
    kind: ClassVar[str]
    #: Strict params (subclass :class:`~edgecraft.plan.DatasetParams` with ``kind: Literal[...]``).
    params_model: ClassVar[type[DatasetParams]]
    summary: ClassVar[str] = ""

    @abstractmethod
    def load(self, name: str, params: P, ctx: DatasetContext) -> Dataset:
        """Read the data; build the result with :func:`make_dataset` (it validates and applies max_samples)."""


@dataclass(frozen=True)
class SampleShape:
    """The shape of one sample of a dataset's only array, known from its params alone."""

    shape: list[int]
    #: The params that set it, for the hint of a mismatch (e.g. ``image_size / layout``).
    fields: str


@runtime_checkable
class DeclaresSampleShape(Protocol):
    """Dataset params that know their sample shape before any data is read (e.g. digits: image_size and
    layout), so a step can check it against the model's input at compile time rather than at run time."""

    def declared_sample_shape(self) -> SampleShape: ...


def sample_shape_of(params: object) -> SampleShape | None:
    """The sample shape a dataset's params declare, or None (the kind knows it only once the data is loaded)."""
    return params.declared_sample_shape() if isinstance(params, DeclaresSampleShape) else None


class DatasetStore:
    """Loads each named dataset of a plan at most once, with the kind that registered it."""

    def __init__(self, specs: Mapping[str, DatasetParams], kinds: Mapping[str, DatasetKind[Any]],
                 ctx: DatasetContext) -> None:
        self._specs = dict(specs)
        self._kinds = kinds
        self._ctx = ctx
        self._loaded: dict[str, Dataset] = {}
        self._bound: dict[str, BoundData] = {}

    def names(self) -> list[str]:
        return sorted(self._specs)

    def get(self, name: str) -> Dataset:
        if name not in self._specs:
            raise InputError(f"dataset {name!r} is not defined in the plan's data (defined: {self.names() or 'none'})")
        if name not in self._loaded:
            spec = self._specs[name]
            self._loaded[name] = self._kinds[spec.kind].load(name, spec, self._ctx)
        return self._loaded[name]

    def bound(self, name: str) -> BoundData:
        """Dataset ``name`` bound to the plan's model I/O (checked once)."""
        if name not in self._bound:
            if self._ctx.model_io is None:
                raise InputError(f"dataset {name!r}: the model's I/O is not known here")
            self._bound[name] = self.get(name).bind(self._ctx.model_io())
        return self._bound[name]


def load_dataset(name: str, params: DatasetParams, base_dir: Path | None, *,
                 registry: Registry | None = None) -> Dataset:
    """Load one dataset outside a plan (scripts, benchmarks, tests) with the kind the installed plugins
    register for ``params.kind``, as a plan would (``registry``: default, the installed plugins)."""
    if registry is None:
        from edgecraft.registry import build_registry

        registry = build_registry()
    kind: DatasetKind[Any] = registry.dataset_kind(params.kind, where=f"data.{name}.kind")
    return kind.load(name, params, DatasetContext(base_dir or Path(".")))
