"""Knowledge distillation for edgecraft: a student learns from a teacher's soft targets.

Public API (torch is imported lazily, on first use):

* ``distill(teacher, student, dataset, params)`` — the training loop on plain torch modules and an
  :class:`edgecraft.torchkit.TorchData` (or a bound dataset); returns a :class:`DistillResult` (``.student``, history).
* ``TrainingParams`` / ``DistillationParams`` — the typed settings (loss, optimiser, schedule, ...).
* ``distillation_loss``, ``soft_target_loss`` — the loss, usable on its own.
* ``scale_width(teacher, example_inputs, width)`` — derive a narrower student from a teacher.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgecraft.plugins.distillation.params import DistillationParams, FeaturePair, TrainingParams

__all__ = ["DistillResult", "DistillationParams", "FeaturePair", "TrainingParams", "distill", "distillation_loss",
           "scale_width", "soft_target_loss"]

#: Everything is imported on first use, the params too (pydantic): `edgecraft --help` imports this package
#: (through the plugin's entry module) to find the commands plugins add.
_LAZY = {"distill": "train", "DistillResult": "train", "distillation_loss": "losses", "soft_target_loss": "losses",
         "scale_width": "student", "DistillationParams": "params", "FeaturePair": "params",
         "TrainingParams": "params"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f"edgecraft.plugins.distillation.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
