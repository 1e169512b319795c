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
                 batch_size: int, seed: int, output: int = 0, progress: Progress | None = None,
                 loss: str = "auto", hidden_weight: float = 0.0) -> dict[str, Any]:
    """Distil ``teacher`` into ``student`` in place (the SDK's teacher objective and loop).

    ``loss`` 'auto' is KL at T=4 mixed with labels when ``data`` has them; without labels it is MSE on
    the outputs: a softmax of an embedding at T=4 is nearly uniform and teaches almost nothing.
    ``hidden_weight`` adds the SDK's per-layer hidden-state term for transformer encoders (the
    factorized model keeps the original's layers, so layer ``i`` pairs with layer ``i``).
    """
    from edgecraft.torchkit import encoder as enc

    kind = ("kl" if data.labeled else "mse") if loss == "auto" else loss
    match = None
    if hidden_weight > 0:
        t_enc, s_enc = enc.find_encoder(teacher), enc.find_encoder(student)
        if t_enc is None or s_enc is None:
            raise ValueError("hidden_weight needs a transformer encoder (BERT family) in the model")
        match = enc.layer_match(t_enc, s_enc, list(range(len(s_enc))), hidden_weight=hidden_weight,
                                attention_weight=0.0)
    teacher_runner = torchkit.Teacher(teacher.eval(), output=output, layers=match.teacher_layers if match else None)
    objective = torchkit.TeacherMatch(teacher_runner, kind=kind, temperature=4.0,
                                      alpha=0.7, output=output, feature_loss=match.loss if match else None)
    # Token inputs (a transformer): the transformer fine-tuning recipe, warm-up then cosine decay per step,
    # batches cut to their longest sentence (exact: padding is masked), the embeddings (never factorized:
    # they are no Linear) kept as they are.
    tokens = data.padding_mask() is not None
    config = torchkit.TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                                  schedule="warmup_cosine" if tokens else "cosine", trim_padding=tokens,
                                  optimizer="adamw" if tokens else "adam", validation_fraction=0.1, patience=5,
                                  freeze=("*embeddings.*",) if tokens else ())
    try:
        result = torchkit.train(student, data, objective, config, progress=progress, label="recovery distill")
    finally:
        teacher_runner.close()
        if match is not None:
            match.close()
    return {"recovery": "distill", "loss": kind, "hidden_weight": hidden_weight, **result.summary()}
