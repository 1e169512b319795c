"""Calibration feeds: taken from a plan dataset, bound to the model's inputs, checked before any tool sees them.

ONNX Runtime's calibrator and NNCF both fail deep inside their own code on an empty or mis-shaped
set (or silently compute ranges from garbage), so the step binds the data to the model's I/O first
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
