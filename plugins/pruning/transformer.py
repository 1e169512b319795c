"""``mode: heads_ffn``: remove attention heads and FFN neurons of a BERT-family encoder, then recover.

The surgery itself (which rows and columns belong to a head, keeping the head counts and the config
consistent) is the SDK's :mod:`edgecraft.torchkit.encoder`, shared with distillation's scaled
students. What is pruning's own is here: how many heads and neurons each layer keeps
(:func:`plan_counts`: uniform, per-layer overrides, or a global ranking), the checks that make a
ratio that would empty a layer an error naming the step and the field *before* anything is cut,
the optional least-squares re-fit of each layer's output projections right after the cut
(:mod:`.reconstruct`, ``reconstruct: least_squares | mask``; off by default: on all-MiniLM-L6-v2 the whole-
projection fit lifts the held-out cosine before recovery but lowers it after recovery, see
benchmarks/compress_levers.py), and the recovery
against the unpruned model (the SDK's training loop and ``TeacherMatch``; unlabeled text is enough:
only the teacher's outputs are matched).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from edgecraft.errors import InputError
from edgecraft.plugins.pruning.params import PruningParams

if TYPE_CHECKING:
    import torch
    from edgecraft.progress import Progress
    from edgecraft.torchkit.data import TorchData
    from edgecraft.torchkit.objectives import Objective

#: FFN widths round down to this multiple unless ``round_to`` says otherwise (SIMD-friendly GEMMs).
DEFAULT_FFN_MULTIPLE = 8
#: The cosine before/after each recovery round is measured on at most this many recovery samples: it is a
#: report figure, and two full forward passes (pruned model and teacher, padded) over a 40,000-sentence corpus
#: would cost more than the recovery's first hundred steps.
COSINE_SAMPLES = 512


@dataclass(frozen=True)
class Shape:
    """What the compile-time check needs: layer count, heads and FFN width per layer."""

    heads: list[int]
    ffn: list[int]

    @property
    def layers(self) -> int:
        return len(self.heads)


def layer_overrides(n_layers: int, prefix: str, layer_ratios: dict[str, float], *, where: str) -> dict[int, float]:
    """``layer_ratios`` keys (a layer name, a glob, or an index) resolved to layer indices; unknown keys fail."""
    import fnmatch

    names = [f"{prefix}.{i}" for i in range(n_layers)]
    out: dict[int, float] = {}
    for key, ratio in layer_ratios.items():
        hits = [i for i, name in enumerate(names) if name == key or fnmatch.fnmatchcase(name, key) or key == str(i)]
        if not hits:
            raise InputError(f"step {where}: params.layer_ratios[{key!r}] matches no encoder layer (the encoder has "
                             f"{n_layers} layers: {names[0]} ... {names[-1]}, or indices 0..{n_layers - 1})",
                             hint="name an encoder layer, a glob such as '*.layer.1*', or an index")
        for i in hits:
            out[i] = ratio
    return out


def _keep(total: int, ratio: float, multiple: int) -> int:
    keep = math.floor(round(total * (1 - ratio), 9))
    return keep - keep % multiple if multiple > 1 and keep >= multiple else keep


def plan_counts(shape: Shape, params: PruningParams, *, prefix: str, where: str,
                head_scores: list[torch.Tensor] | None = None,
                ffn_scores: list[torch.Tensor] | None = None) -> tuple[list[int], list[int]]:
    """(heads kept, FFN neurons kept) per layer. Uniform/per-layer targets are checked without scores;
    global ranking needs them (without, only the per-layer floor is checked)."""
    from edgecraft.torchkit.encoder import global_keep

    multiple = params.round_to or DEFAULT_FFN_MULTIPLE
    overrides = layer_overrides(shape.layers, prefix, params.layer_ratios, where=where)
    heads: list[int] = []
    ffn: list[int] = []
    for i in range(shape.layers):
        if i in overrides:
            h_ratio, f_ratio = overrides[i], overrides[i]
            h_src = f_src = f"params.layer_ratios (layer {i})"
        else:
            h_ratio, f_ratio = params.head_ratio, params.ffn_ratio
            h_src, f_src = "params.head_ratio", "params.ffn_ratio"
        if params.scope == "global" and i not in overrides:
            # Checked per layer against max_layer_ratio below; the global total is allocated from scores.
            h_ratio = min(h_ratio, params.max_layer_ratio)
            f_ratio = min(f_ratio, params.max_layer_ratio)
        kh = _keep(shape.heads[i], h_ratio, 1)
        kf = _keep(shape.ffn[i], f_ratio, multiple)
        if kh < 1:
            largest = (shape.heads[i] - 1) / shape.heads[i]
            raise InputError(f"step {where}: {h_src} = {h_ratio:g} would remove every attention head of encoder layer "
                             f"{prefix}.{i} ({shape.heads[i]} heads)",
                             hint=f"use a ratio <= {largest:.4g} (keeps one head per layer)")
        if kf < 1:
            largest = 1 - min(multiple, shape.ffn[i]) / shape.ffn[i]
            raise InputError(f"step {where}: {f_src} = {f_ratio:g} would remove every FFN neuron of encoder layer "
                             f"{prefix}.{i} ({shape.ffn[i]} neurons, kept counts rounded to {multiple})",
                             hint=f"use a ratio <= {largest:.4g}")
        heads.append(kh)
        ffn.append(kf)
    if params.scope == "global" and head_scores is not None and ffn_scores is not None:
        free = [i for i in range(shape.layers) if i not in overrides]
        if free:
            min_heads = [max(1, math.ceil(round(shape.heads[i] * (1 - params.max_layer_ratio), 9))) for i in free]
            min_ffn = [max(multiple, math.ceil(round(shape.ffn[i] * (1 - params.max_layer_ratio), 9))) for i in free]
            g_heads = global_keep([head_scores[i] for i in free], params.head_ratio, minimum=min_heads)
            g_ffn = global_keep([ffn_scores[i] for i in free], params.ffn_ratio, minimum=min_ffn, multiple=multiple)
            for j, i in enumerate(free):
                heads[i], ffn[i] = g_heads[j], g_ffn[j]
    return heads, ffn


def _importance(params: PruningParams) -> str:
    return "l2" if params.importance == "bn_scale" else params.importance


def prune_heads_ffn(module: torch.nn.Module, params: PruningParams, *, where: str, data: TorchData | None,
                    teacher: torch.nn.Module | None, output: int = 0, seed: int = 0,
                    progress: Progress | None = None) -> dict[str, Any]:
    """Prune ``module`` in place (one-shot or in rounds), recovering against ``teacher`` on ``data``."""
    from edgecraft import torchkit
    from edgecraft.plugins.pruning.reconstruct import reconstruct
    from edgecraft.torchkit import encoder as enc_mod

    encoder = enc_mod.require_encoder(module, where=where, what="mode: heads_ffn")
    shape = Shape([encoder.heads(i) for i in range(len(encoder))], [encoder.ffn(i) for i in range(len(encoder))])
    plan_counts(shape, params, prefix=encoder.prefix, where=where)  # fail before cutting anything
    before = encoder.shape()
    encoder_params_before = encoder.params_count()
    kind = _importance(params)
    rounds = 1 if params.schedule == "one_shot" else params.iterations
    objective = None
    teacher_encoder = enc_mod.find_encoder(teacher) if teacher is not None else None
    history: list[dict[str, Any]] = []
    match = None
    # Least squares needs calibration text and the unpruned layers' outputs (see reconstruct.py).
    reconstructs = params.reconstruct != "none" and data is not None
    if reconstructs and teacher_encoder is None:
        raise InputError(f"step {where}: params.reconstruct: {params.reconstruct} fits the pruned layers to the "
                         "unpruned model's, and no unpruned model is available", hint="set params.reconstruct: none")
    if data is not None:
        if data.labeled:
            objective = torchkit.CrossEntropy(output)
            recovery_kind = "cross_entropy"
        else:
            if teacher is None or teacher_encoder is None:
                raise InputError(f"step {where}: params.dataset {data.name!r} has no labels and no unpruned model is "
                                 "available to imitate")
            recovery_kind = f"{params.loss}_to_unpruned" + (f"+hidden({params.hidden_weight:g})"
                                                            if params.hidden_weight else "")
    # 'split': round r recovers on the r-th of `rounds` equal parts of the data (equal total steps to one-shot).
    parts = [data] * rounds if data is None or params.round_data == "all" or rounds == 1 else \
        [data.subset(chunk) for chunk in np.array_split(np.arange(len(data)), rounds)]
    for r in range(rounds):
        fraction = (r + 1) / rounds
        round_data = parts[r]
        step_params = params.model_copy(update={
            "head_ratio": params.head_ratio * fraction, "ffn_ratio": params.ffn_ratio * fraction,
            "layer_ratios": {k: v * fraction for k, v in params.layer_ratios.items()}})
        if kind == "taylor":
            if data is None:
                raise InputError(f"step {where}: importance: taylor needs params.dataset")
            grad_objective: Objective
            if objective is not None:
                grad_objective = objective
            elif teacher is not None:
                grad_objective = torchkit.TeacherMatch(torchkit.Teacher(teacher.eval(), output=output),
                                                       kind=params.loss, output=output)
            else:  # unlabeled data without the unpruned model has failed above
                raise InputError(f"step {where}: importance: taylor needs labels or the unpruned model")
            torchkit.accumulate_gradients(module, data, grad_objective, batches=params.taylor_batches,
                                          batch_size=params.batch_size, seed=seed + r)
        h_scores = [enc_mod.head_scores(encoder, i, kind) for i in range(len(encoder))]
        f_scores = [enc_mod.ffn_scores(encoder, i, kind) for i in range(len(encoder))]
        module.zero_grad(set_to_none=True)
        current = Shape([encoder.heads(i) for i in range(len(encoder))], [encoder.ffn(i) for i in range(len(encoder))])
        # Ratios are of the original widths: scale the current round's targets from the original shape.
        heads, ffn = plan_counts(shape, step_params, prefix=encoder.prefix, where=where,
                                 head_scores=h_scores, ffn_scores=f_scores)
        for i in range(len(encoder)):
            enc_mod.prune_heads(encoder, i, enc_mod.top(h_scores[i], min(heads[i], current.heads[i])))
            enc_mod.prune_ffn(encoder, i, enc_mod.top(f_scores[i], min(ffn[i], current.ffn[i])))
        enc_mod.sync_config(encoder)
        enc_mod.check_consistent(encoder)
        row: dict[str, Any] = {"round": r + 1, "heads": [encoder.heads(i) for i in range(len(encoder))],
                               "ffn": [encoder.ffn(i) for i in range(len(encoder))]}
        if reconstructs:
            assert data is not None and teacher is not None and teacher_encoder is not None
            if r == 0:
                row["cosine_after_cut"] = round(torchkit.evaluate(module, data.take(COSINE_SAMPLES), output=output,
                                                                  teacher=teacher)["cosine"], 5)
            if progress is not None:
                progress.status(f"{where}: {params.reconstruct} reconstruction (round {r + 1})")
            row["reconstruction"] = reconstruct(encoder, teacher_encoder, data, samples=params.reconstruct_samples,
                                                method=params.reconstruct)
        if data is not None and params.epochs > 0:
            if objective is None:
                assert teacher is not None and teacher_encoder is not None
                match = enc_mod.layer_match(teacher_encoder, encoder, list(range(len(encoder))),
                                            hidden_weight=params.hidden_weight, attention_weight=0.0)
                t = torchkit.Teacher(teacher.eval(), output=output, layers=match.teacher_layers if match else None)
                round_objective: Any = torchkit.TeacherMatch(t, kind=params.loss, output=output,
                                                             feature_loss=match.loss if match else None)
            else:
                round_objective = objective
            probe = data.take(COSINE_SAMPLES)
            if teacher is not None and r == 0:
                row["cosine_before_recovery"] = round(torchkit.evaluate(module, probe, output=output,
                                                                        teacher=teacher)["cosine"], 5)
            # The transformer fine-tuning recipe: warm-up then cosine decay per step, batches cut to their
            # longest sentence (exact: padding is masked; several times less compute on short sentences); the
            # embeddings, which pruning does not touch, stay the unpruned model's.
            config = torchkit.TrainConfig(epochs=params.epochs, lr=params.lr, batch_size=params.batch_size,
                                          seed=seed + r, optimizer="adamw", schedule="warmup_cosine",
                                          trim_padding=True, freeze=("*embeddings.*",))
            try:
                result = torchkit.train(module, round_data, round_objective, config, progress=progress,
                                        label=f"{where} recovery round {r + 1}")
            finally:
                if match is not None:
                    match.close()
                if objective is None:
                    round_objective.teacher.close()
            row["recovery_loss"] = [round(h["train_loss"] or 0.0, 5) for h in result.history]
            if teacher is not None:
                row["cosine_after_recovery"] = round(torchkit.evaluate(module, probe, output=output,
                                                                       teacher=teacher)["cosine"], 5)
        history.append(row)
    after = encoder.shape()
    encoder_params_after = encoder.params_count()
    return {
        "encoder_before": before, "encoder_after": after,
        "heads_before": sum(before["heads"]), "heads_after": sum(after["heads"]),
        "ffn_before": sum(before["ffn"]), "ffn_after": sum(after["ffn"]),
        "encoder_params_before": encoder_params_before, "encoder_params_after": encoder_params_after,
        "encoder_params_ratio": round(encoder_params_after / encoder_params_before, 6),
        "importance": kind, "scope": params.scope, "rounds": history,
        "reconstruct": params.reconstruct if reconstructs else "none",
        "recovery": None if data is None or params.epochs == 0 else {
            "dataset": data.name, "samples": len(data), "epochs_per_round": params.epochs, "loss": recovery_kind,
            "round_data": params.round_data if rounds > 1 else "all",
            "note": f"cosine_* are measured on the first {COSINE_SAMPLES} recovery samples against the unpruned "
                    "model (torch); the gate measures on the target"},
        # A config never pruned of heads (head_ratio 0) has no `pruned_heads` attribute in recent transformers.
        "config": {"num_attention_heads": encoder.config.num_attention_heads,
                   "intermediate_size": getattr(encoder.config, "intermediate_size", None),
                   "pruned_heads": {str(k): v for k, v in
                                    (getattr(encoder.config, "pruned_heads", None) or {}).items()}},
    }
