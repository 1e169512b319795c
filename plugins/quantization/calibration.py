"""Calibration samples: taken from a plan dataset and checked against the model before any tool sees them.

ONNX Runtime's calibrator and NNCF both fail deep inside their own code on an empty or mis-shaped
set (or silently compute ranges from garbage), so the step checks first and names itself.
"""

from __future__ import annotations

import numpy as np
from edgecraft.context import RunContext
from edgecraft.errors import InputError
from edgecraft.models import InputSpec


def calibration_samples(ctx: RunContext, dataset_name: str, count: int, spec: InputSpec) -> np.ndarray:
    """Up to ``count`` samples shaped like the model input (sample axis first), validated."""
    where = f"{ctx.step.where} on target {ctx.target.label!r}"
    try:
        data = ctx.dataset(dataset_name)
    except InputError as exc:
        raise InputError(f"{where}: calibration dataset {dataset_name!r} could not be loaded: {exc.message}",
                         hint=exc.hint) from exc
    x = data.x[:count]
    if x.shape[0] == 0:
        raise InputError(f"{where}: calibration dataset {dataset_name!r} is empty",
                         hint="static quantization needs representative inputs; give the dataset samples")
    expected = tuple(spec.shape[1:])
    if tuple(x.shape[1:]) != expected:
        raise InputError(
            f"{where}: calibration dataset {dataset_name!r} has samples of shape {list(x.shape[1:])} but the "
            f"model input {spec.name!r} takes {list(expected)} per sample (input shape {list(spec.shape)})",
            hint="use a dataset shaped like the model input (for digits: image_size and layout)")
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x.reshape(x.shape[0], -1))).any(axis=1).sum())
        raise InputError(f"{where}: calibration dataset {dataset_name!r} has {bad} sample(s) with NaN or inf",
                         hint="activation ranges computed from non-finite values are meaningless")
    return np.ascontiguousarray(x, dtype=np.float32)


def as_batches(samples: np.ndarray) -> list[np.ndarray]:
    """One sample per batch: works for exported models whose batch axis is fixed at 1."""
    return [samples[i:i + 1] for i in range(samples.shape[0])]
