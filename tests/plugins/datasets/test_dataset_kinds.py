"""The datasets plugin through the registry: load_dataset outside a plan, and declared sample shapes."""

from __future__ import annotations

import numpy as np
import pytest
from edgecraft.datasets import load_dataset, sample_shape_of
from edgecraft.errors import InputError
from edgecraft.plan import DatasetParams
from edgecraft.plugins.datasets.digits import DigitsParams
from edgecraft.plugins.datasets.npz import NpzParams
from edgecraft.registry import build_registry


def test_load_dataset_uses_the_registered_kind(tmp_path) -> None:
    digits = load_dataset("d", DigitsParams(split="test", image_size=8, max_samples=5), None)
    assert digits.x.shape == (5, 1, 8, 8) and digits.labeled
    np.savez(tmp_path / "a.npz", x=np.zeros((3, 2), np.float32))
    npz = load_dataset("n", NpzParams(path="a.npz"), tmp_path, registry=build_registry())
    assert len(npz) == 3 and not npz.labeled


def test_load_dataset_of_an_unknown_kind_lists_the_installed_ones() -> None:
    with pytest.raises(InputError, match=r"data.x.kind = 'nope': unknown dataset kind; installed kinds: .*digits"):
        load_dataset("x", DatasetParams(kind="nope"), None)


def test_declared_sample_shape() -> None:
    image = sample_shape_of(DigitsParams(image_size=16))
    assert image is not None and image.shape == [1, 16, 16] and image.fields == "image_size / layout"
    flat = sample_shape_of(DigitsParams(image_size=8, layout="flat"))
    assert flat is not None and flat.shape == [64]
    assert sample_shape_of(NpzParams(path="a.npz")) is None  # known only once the file is read
    assert sample_shape_of({"kind": "digits"}) is None and sample_shape_of(None) is None
