"""``{kind: npz, path: data.npz}``: arrays saved with numpy; keys named like model inputs feed them."""

from __future__ import annotations

from typing import Literal

import numpy as np
from edgecraft.datasets import Dataset, DatasetContext, DatasetKind, make_dataset
from edgecraft.errors import InputError, resolve_input_path
from edgecraft.plan import DatasetParams
from pydantic import Field


class NpzParams(DatasetParams):
    """A .npz file: arrays with the sample axis first, and optionally an integer labels array.

    Which arrays are read: ``inputs: x`` (one key, the legacy single-input form), ``inputs:
    {input_ids: ids, attention_mask: mask}`` (model input -> key), or, when ``inputs`` is omitted,
    every key except the labels (each feeds the model input of the same name).
    """

    kind: Literal["npz"] = "npz"
    path: str = Field(description="Path to the .npz file, relative to the plan file.")
    inputs: str | dict[str, str] | None = Field(
        None, description="Key of the single inputs array, or a mapping model input -> key; default: every "
        "non-label key, matched to inputs by name (or the only one to a single-input model).")
    labels: str | None = Field("y", description="Key of the integer labels array, or null for unlabeled data "
                               "(a missing 'y' is fine when labels is left at its default).")


class NpzKind(DatasetKind[NpzParams]):
    kind = "npz"
    params_model = NpzParams
    summary = "A .npz file; arrays named like model inputs (or mapped with inputs:) feed them; optional labels."

    def load(self, name: str, params: NpzParams, ctx: DatasetContext) -> Dataset:
        path = resolve_input_path(ctx.base_dir / params.path, field=f"data.{name}.path")
        where = f"data.{name}.path"
        if not path.is_file():
            raise InputError(f"{where}: file {path} does not exist", hint="paths are relative to the plan file")
        try:
            archive = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise InputError(f"{where}: {path} holds Python objects (pickled arrays), which edgecraft does not "
                             "load: save numeric arrays") from exc
        except Exception as exc:
            raise InputError(f"{where}: {path} is not a readable .npz file: {type(exc).__name__}: "
                             f"{str(exc)[:200]}") from exc
        if not hasattr(archive, "files"):
            raise InputError(f"{where}: {path} is a single .npy array, not a .npz archive of named arrays")
        with archive:
            keys = sorted(archive.files)
            label_key = params.labels
            if label_key is not None and label_key not in archive.files:
                if "labels" in params.model_fields_set:
                    raise InputError(f"data.{name}.labels: key {label_key!r} is not in {path.name} (keys: {keys}); "
                                     "set labels: null for unlabeled data")
                label_key = None
            mapping: dict[str, str] = {}
            if isinstance(params.inputs, str):
                wanted = [params.inputs]
            elif isinstance(params.inputs, dict):
                mapping = dict(params.inputs)
                wanted = sorted(set(mapping.values()))
            else:
                wanted = [k for k in keys if k != label_key]
            for key in wanted:
                if key not in archive.files:
                    raise InputError(f"data.{name}.inputs: key {key!r} is not in {path.name} (keys: {keys})")
            try:
                arrays = {key: archive[key] for key in wanted}
            except ValueError as exc:
                raise InputError(f"{where}: {path} holds object arrays, which edgecraft does not load "
                                 "(allow_pickle is off): save numeric arrays") from exc
            labels = archive[label_key] if label_key is not None else None
        if not arrays:
            raise InputError(f"{where}: {path} holds no input arrays (keys: {keys})")
        return make_dataset(name, arrays, labels, max_samples=params.max_samples, mapping=mapping)
