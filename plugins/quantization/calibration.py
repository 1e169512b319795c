"""Calibration feeds: taken from a plan dataset, bound to the model's inputs, checked before any tool sees them.

Runtimes' quantizers (ONNX Runtime's calibrator, NNCF) fail deep inside their own code on an empty or
mis-shaped set (or silently compute ranges from garbage), so the step binds the data to the model's I/O first
(every input fed, shapes and dtypes checked, NaN refused by the dataset) and names itself on error.
Integer inputs (token ids, masks) are fed as they are: the quantizers never quantize graph inputs
that are not float.
"""

from __future__ import annotations

import numpy as np
from edgecraft.context import RunContext
from edgecraft.errors import InputError

Feeds = dict[str, np.ndarray]


def calibration_feeds(ctx: RunContext, dataset_name: str, count: int) -> list[Feeds]:
    """Up to ``count`` samples as the model's feeds, one sample per call (fits fixed-batch models)."""
    where = f"{ctx.step.where} on target {ctx.target.label!r}"
    try:
        data = ctx.feeds(dataset_name)
    except InputError as exc:
        raise InputError(f"{where}: calibration dataset {dataset_name!r}: {exc.message}", hint=exc.hint) from exc
    n = min(count, len(data))
    if n == 0:
        raise InputError(f"{where}: calibration dataset {dataset_name!r} is empty",
                         hint="static quantization needs representative inputs; give the dataset samples")
    return [data.feeds(slice(i, i + 1)) for i in range(n)]


class CalibrationSource:
    """The calibration samples an implementation asks for (``Int8Run.calibration``): loaded on the first call."""

    def __init__(self, ctx: RunContext, dataset_name: str | None, count: int) -> None:
        self._ctx, self._name, self._count = ctx, dataset_name, count
        #: The samples, once an implementation has asked for them.
        self.loaded: list[Feeds] | None = None

    def __call__(self) -> list[Feeds]:
        if self.loaded is None:
            if self._name is None:
                raise InputError(f"{self._ctx.step.where} on target {self._ctx.target.label!r}: this step needs "
                                 "calibration samples", hint="set params.calibration_dataset")
            self.loaded = calibration_feeds(self._ctx, self._name, self._count)
        return self.loaded


def ranking_feeds(ctx: RunContext, calibration: CalibrationSource, dataset_name: str | None,
                  count: int) -> list[Feeds]:
    """Samples to rank layers by sensitivity: the calibration samples if they were loaded, else up to ``count``
    of ``dataset_name`` or, without one, of the evaluation data (ranking compares outputs, never labels)."""
    if calibration.loaded is not None:
        return calibration.loaded[:count]
    name = dataset_name or ctx.plan.evaluation.dataset
    assert name is not None
    return calibration_feeds(ctx, name, count)
