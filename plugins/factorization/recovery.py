"""Recovery after factorization: a plain fine-tune, or distillation from the original model.

Truncation removes what each layer's weights said least about, not what the task needs least, so
a short training run on task data usually wins most of the lost accuracy back. Both recoveries are
the SDK's training loop (:func:`edgecraft.torchkit.train`) with a different objective: labels, or
the original model's softened outputs (KL at T=4 mixed with the labels, a 10% validation split
with early stopping: the distillation step's defaults).

The fine-tune keeps the original model's BatchNorm statistics (``batchnorm: freeze``): they were
estimated on the whole training set with the original weights, and re-estimating them from a few
small recovery batches adds noise that the short fine-tune cannot average out. Distillation lets
them train, as the distillation step does (its teacher targets are smoother than labels).
"""

from __future__ import annotations

from typing import Any

from edgecraft import torchkit
from edgecraft.progress import Progress
from edgecraft.torchkit.data import TorchData
from torch import nn


def finetune(module: nn.Module, data: TorchData, *, epochs: int, lr: float, batch_size: int, seed: int,
             output: int = 0, progress: Progress | None = None) -> dict[str, Any]:
    """Train ``module`` in place with cross-entropy on ``data``'s labels (Adam, shuffled batches)."""
    if not data.labeled:
        raise ValueError(f"dataset {data.name!r} has no labels; a fine-tune needs labels (use recover: distill "
                         "to learn from the original model instead)")
    config = torchkit.TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, batchnorm="freeze")
    result = torchkit.train(module, data, torchkit.CrossEntropy(output), config, progress=progress,
                            label="recovery fine-tune")
    return {"recovery": "finetune", "epochs": epochs,
            "train_loss": [round(row["train_loss"] or 0.0, 5) for row in result.history],
            "train_size": result.train_size, "train_seconds": round(result.seconds, 2)}


def distill_from(teacher: nn.Module, student: nn.Module, data: TorchData, *, epochs: int, lr: float,
                 batch_size: int, seed: int, output: int = 0, progress: Progress | None = None) -> dict[str, Any]:
    """Distil ``teacher`` into ``student`` in place (the SDK's teacher objective and loop)."""
    teacher_runner = torchkit.Teacher(teacher.eval(), output=output)
    objective = torchkit.TeacherMatch(teacher_runner, kind="kl", temperature=4.0, alpha=0.7, output=output)
    config = torchkit.TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, schedule="cosine",
                                  validation_fraction=0.1, patience=5)
    try:
        result = torchkit.train(student, data, objective, config, progress=progress, label="recovery distill")
    finally:
        teacher_runner.close()
    return {"recovery": "distill", **result.summary()}
