"""``{kind: factory, factory: pkg.mod:fn}``: user code returns the arrays."""

from __future__ import annotations

from typing import Literal

import numpy as np
from edgecraft.datasets import Dataset, DatasetContext, DatasetKind, make_dataset
from edgecraft.errors import InputError
from edgecraft.loading import load_callable
from edgecraft.plan import DatasetParams
from edgecraft.user_code import call_user_code
from pydantic import Field


class FactoryParams(DatasetParams):
    """A 'module:function' (or 'file.py:function') returning ``(inputs, labels_or_None)``.

    ``inputs`` is one array (a single-input model) or a dict of arrays keyed like the model inputs.
    """

    kind: Literal["factory"] = "factory"
    factory: str
    inputs: dict[str, str] = Field(default_factory=dict, description="Model input -> key of the returned dict.")


class FactoryKind(DatasetKind[FactoryParams]):
    kind = "factory"
    params_model = FactoryParams
    summary = "User code returning (array or {name: array}, labels or None)."

    def load(self, name: str, params: FactoryParams, ctx: DatasetContext) -> Dataset:
        fn = load_callable(params.factory, ctx.base_dir, field=f"data.{name}.factory")
        result = call_user_code(fn, what=f"data.{name}.factory: {params.factory}")
        if not (isinstance(result, tuple) and len(result) == 2):
            raise InputError(f"data.{name}.factory: {params.factory} must return (inputs, labels_or_None), "
                             f"got {type(result).__name__}")
        inputs, labels = result
        arrays = dict(inputs) if isinstance(inputs, dict) else {"x": np.asarray(inputs)}
        return make_dataset(name, arrays, None if labels is None else np.asarray(labels),
                            max_samples=params.max_samples, mapping=params.inputs)
