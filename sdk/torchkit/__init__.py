"""The torch service every torch-stage strategy shares: batching, training, evaluation, counting, probing.

Pruning, factorization and distillation all fine-tune, evaluate, count and time torch models; each
used to carry its own copy. They now call these modules (a plugin never imports another plugin):

* :mod:`.data` — :class:`TorchData`: a dataset bound to a model's I/O, as seeded batches of
  ``(inputs in io order, labels)`` with dtypes kept (token ids stay int64);
* :mod:`.objectives` — what a training step minimises: :class:`CrossEntropy` on labels, or
  :class:`TeacherMatch` (MSE or temperature KL to a :class:`Teacher`, optionally mixed with labels,
  plus a feature-loss hook);
* :mod:`.training` — :func:`train`: the one loop (optimizer, schedule, epochs, early stopping,
  seeds, BatchNorm policy, gradient clipping, sparsity kept);
* :mod:`.evaluation` — :func:`predict`, :func:`evaluate` (top-1, agreement and cosine to a teacher);
* :mod:`.gradients` — :func:`accumulate_gradients` (data-aware importance scores read ``.grad``);
* :mod:`.counting` — :func:`count_params`, :func:`count_macs` (torch's own FLOP counter);
* :mod:`.encoder` — transformer-encoder surgery (heads, FFN neurons, layers) and per-layer taps;
* :mod:`.probe` — :func:`ort_session`, :func:`export_probe`: ONNX Runtime sessions for timing layers.

Importing this package is cheap; torch is imported by the submodules, on first use of a name.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TorchData": "data", "Batch": "data", "step_data": "data", "io_for_arrays": "data", "example_inputs": "data",
    "first_output": "data", "outputs_of": "data",
    "Loss": "objectives", "Objective": "objectives", "CrossEntropy": "objectives", "TeacherMatch": "objectives",
    "Teacher": "objectives", "soft_target_loss": "objectives", "logit_mse_loss": "objectives",
    "distillation_loss": "objectives", "cosine_loss": "objectives",
    "LayerTap": "taps", "inputs_reaching": "taps",
    "TrainConfig": "training", "TrainResult": "training", "train": "training",
    "predict": "evaluation", "evaluate": "evaluation", "top1": "evaluation",
    "accumulate_gradients": "gradients",
    "Cost": "counting", "count_params": "counting", "count_macs": "counting", "model_cost": "counting",
    "ort_session": "probe", "export_probe": "probe",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"edgecraft.torchkit.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
