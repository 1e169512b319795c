"""Typed params of the ``distillation`` step (pure pydantic: imports no torch, so registration stays fast).

Two groups live here so other code can reuse them:

* :class:`TrainingParams` — loss and training loop settings, everything :func:`~edgecraft.plugins.
  distillation.train.distill` needs. A script (or a future core recovery hook) can build one and
  call ``distill`` directly.
* :class:`DistillationParams` — the plan step: the training settings plus where teacher, student
  and data come from.
"""

from __future__ import annotations

from typing import Literal

from edgecraft.strategy import StrategyParams
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: ``student`` values that are not factory references.
STUDENT_CURRENT = "current"
STUDENT_SCALED = "scaled"
STUDENT_LAYERS = "layers"
#: Params of student: layers only.
LAYERS_ONLY = frozenset({"layers", "every", "imitate"})


class FeaturePair(BaseModel):
    """Match an intermediate student layer to a teacher layer through a learned adapter."""

    model_config = ConfigDict(extra="forbid")

    teacher: str = Field(description="Name of a teacher submodule (as in `model.named_modules()`), e.g. 'features.3'.")
    student: str = Field(description="Name of the student submodule whose output should imitate it.")
    weight: float = Field(1.0, gt=0, description="Weight of this pair's MSE in the total loss.")


class TrainingParams(StrategyParams):
    """Loss and training-loop settings of a distillation run (shared by the step and :func:`distill`)."""

    # ---- loss
    loss: Literal["kl", "mse", "cosine"] = Field(
        "kl", description="'kl': KL divergence between temperature-softened distributions, scaled by T²; "
        "'mse': mean squared error between raw logits; 'cosine': 1 - cos of each sample's output (embedding "
        "models: sentence embeddings are directions, not logits).")
    hidden_weight: float = Field(
        0.0, ge=0, description="Transformer students: weight of the per-layer hidden-state loss (MSE / teacher "
        "variance) between every student encoder layer and the teacher layer it was initialised from.")
    attention_weight: float = Field(
        0.0, ge=0, description="Transformer students: weight of the per-layer attention-map loss (KL of the "
        "attention probabilities, MiniLM's self-attention transfer). Trains with eager attention.")
    relation_weight: float = Field(
        0.0, ge=0, description="Transformer students: weight of MiniLMv2's self-attention relation loss: per "
        "paired layer, KL between the teacher's and the student's query-query, key-key and value-value relations "
        "(softmax of scaled dot products per relation head), summed. Needs no eager attention.")
    relation_heads: int | None = Field(
        None, ge=1, description="Relation heads the projections are split into for relation_weight (default: "
        "the teacher's attention heads).")
    temperature: float = Field(4.0, gt=0, description="Softening temperature T of the 'kl' loss.")
    alpha: float = Field(0.7, ge=0, le=1, description="Weight of the soft (teacher) loss; 1 - alpha weighs the "
                         "hard-label cross-entropy. Without labels the soft loss alone is used.")
    features: list[FeaturePair] = Field(
        default_factory=list, description="Optional intermediate-feature distillation pairs (learned 1x1 conv / "
        "linear adapters map student features to the teacher's width; discarded after training).")
    # ---- optimisation
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0, description="Initial learning rate.")
    weight_decay: float = Field(0.0, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum (sgd only).")
    schedule: Literal["cosine", "step", "none", "warmup_cosine"] = Field(
        "cosine", description="Learning-rate schedule: 'cosine' / 'step' per epoch, or 'warmup_cosine': a linear "
        "warm-up over the first `warmup` fraction of all steps, then a cosine decay to zero per step (the usual "
        "transformer recipe).")
    warmup: float = Field(0.06, ge=0, lt=1, description="warmup_cosine: fraction of all optimizer steps spent "
                          "warming the learning rate up.")
    step_size: int = Field(10, ge=1, description="Epochs between decays ('step' schedule).")
    gamma: float = Field(0.1, gt=0, le=1, description="Decay factor ('step' schedule).")
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(64, ge=1)
    # ---- validation and early stopping
    validation_fraction: float = Field(
        0.1, ge=0, lt=1, description="Fraction of the training data held out for early stopping when no "
        "`validation` dataset is named (0 disables early stopping).")
    patience: int | None = Field(5, ge=1, description="Stop after this many epochs without improvement on the "
                                 "validation split (null: run every epoch, still keep the best weights).")
    monitor: Literal["auto", "loss", "accuracy"] = Field(
        "auto", description="What early stopping watches: 'auto' = accuracy when the data has labels, else loss.")
    # ---- data handling
    augment: Literal["none", "noise", "shift"] = Field(
        "none", description="'noise': Gaussian noise (std 0.05); 'shift': random ±1-pixel shifts of image inputs. "
        "Any augmentation means the teacher runs on every batch (no caching).")
    trim_padding: bool = Field(
        True, description="Token inputs with an `attention_mask` (transformers): batch sentences of similar length "
        "and cut each batch to its longest one. Exact for models that mask padding, and several times faster "
        "on short sentences padded to a fixed length; the teacher then runs on every batch (no caching).")
    freeze: list[str] = Field(
        default_factory=list, description="Student parameters left untrained, as fnmatch patterns of their names, "
        "e.g. ['*embeddings.*']: a transformer student keeps the teacher's token embeddings (a third to half of a "
        "small encoder's parameters), and training skips their gradients.")
    cache_teacher: bool = Field(True, description="Compute the teacher's outputs once and reuse them every epoch "
                                "(only when augment is 'none').")
    keep_zeros: bool = Field(True, description="Weights that are exactly zero in the student before training "
                             "(e.g. after unstructured pruning) stay zero, so fine-tuning keeps the sparsity.")
    seed: int | None = Field(None, description="Seed of initialisation, shuffling and splits; defaults to the "
                             "plan's seed.")


class DistillationParams(TrainingParams):
    """The ``distillation`` step: train a student to imitate a teacher; the student becomes the model."""

    student: str = Field(
        STUDENT_SCALED, description="'scaled': the teacher with every hidden layer's width multiplied by `width` "
        "(derived with Torch-Pruning's dependency graph; for a transformer encoder: its attention heads and FFN "
        "neurons); 'layers': a transformer encoder keeping every `every`-th layer or the listed `layers`, "
        "initialised from the teacher (DistilBERT); 'current': fine-tune the model handed to this step "
        "(e.g. after pruning or factorization) against the original model; or a 'package.module:function' / "
        "'file.py:function' factory returning an untrained student nn.Module.")
    width: float = Field(0.5, gt=0, lt=1, description="Channel/neuron width factor for student: scaled "
                         "(parameters shrink roughly by width²).")
    round_to: int | None = Field(8, ge=1, description="Round scaled channel counts to the nearest multiple of this "
                                 "(null: exact width). CPU kernels are blocked by 8/16 channels: 16-32-32 channels ran "
                                 "2.6x faster than 15-30-30 on ONNX Runtime here.")
    layers: list[int] | None = Field(
        None, description="student: layers: the teacher's encoder layers the student keeps (0-based, in order), "
        "e.g. [1, 3, 5].")
    every: int | None = Field(
        None, ge=2, description="student: layers: keep every k-th encoder layer, counted so the last one is kept "
        "(6 layers, every 2: layers 1, 3, 5). Default 2 when `layers` is not given.")
    imitate: list[int] | None = Field(
        None, description="student: layers: the teacher layer each student layer's per-layer terms (hidden, "
        "attention, relation) imitate, one per kept layer (default: the layer it was copied from), e.g. "
        "[1, 3, 5] for layers [0, 2, 5].")
    init: Literal["random", "teacher"] = Field(
        "random", description="student: scaled only. 'random': fresh initialisation; 'teacher': start from the "
        "teacher's largest-L1 channels (a pruned copy), which usually converges faster.")
    teacher: Literal["auto", "input", "original"] = Field(
        "auto", description="'input': the model as it stands before this step; 'original': the plan's model before "
        "any step; 'auto': 'original' when student is 'current', else 'input'.")
    train: str | None = Field(None, description="Name of the plan dataset to train on (required).")
    validation: str | None = Field(None, description="Optional plan dataset for early stopping (instead of a split).")

    @field_validator("student")
    @classmethod
    def _student_reference(cls, value: str) -> str:
        if value in (STUDENT_CURRENT, STUDENT_SCALED, STUDENT_LAYERS):
            return value
        module_ref, _, attr = value.partition(":")
        if not module_ref or not attr:
            raise ValueError(f"expected 'scaled', 'layers', 'current' or a 'package.module:function' / "
                             f"'file.py:function' factory, got {value!r}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DistillationParams:
        if self.student == STUDENT_CURRENT and self.teacher == "input":
            raise ValueError("student: current with teacher: input would distil the model into itself; use "
                             "teacher: original (or auto)")
        return self

    def effective_teacher(self) -> Literal["input", "original"]:
        if self.teacher != "auto":
            return self.teacher
        return "original" if self.student == STUDENT_CURRENT else "input"

    def training(self) -> TrainingParams:
        """The training subset, for :func:`~edgecraft.plugins.distillation.train.distill`."""
        return TrainingParams.model_validate(self.model_dump(include=set(TrainingParams.model_fields)))
