"""Transformer-encoder surgery shared by pruning, distillation and factorization: heads, FFN neurons, layers.

Several strategies edit the same structure of a Hugging Face BERT-family encoder (BERT, RoBERTa,
XLM-R, ELECTRA, MiniLM): pruning removes attention heads and FFN neurons, distillation keeps every
k-th layer (DistilBERT) or narrows heads/FFN (``student: scaled``), and every recovery taps the
per-layer hidden states and attention maps. The architecture rule is that a plugin never imports
another plugin, so this lives in the SDK.

What is *not* written here: the weight slicing is transformers' own ``prune_linear_layer``; the
layers' forward code is transformers' own. What transformers 5 lacks (``PreTrainedModel.prune_heads``
is gone) and Torch-Pruning does not give without tracing the whole model is the bookkeeping:
which rows of query/key/value and which columns of the attention output belong to a head, keeping
``num_attention_heads``/``all_head_size`` and the config consistent, scoring heads and neurons
(weight magnitude, or first-order Taylor ``|w · dL/dw|`` from :func:`accumulate_gradients`), and
choosing how many each layer keeps (uniform, per-layer or global). Torch-Pruning 1.6 can prune
heads too (``num_heads``/``prune_num_heads``), but it needs to trace the adapter, attention mask
included, and its example still patches the attention modules' head counts by hand afterwards;
the coupling inside a BERT layer is fixed and known, so the direct edit is smaller and cannot be
mistraced.

The config after pruning: BERT derives the head size as ``hidden_size / num_attention_heads``, so
``num_attention_heads`` must keep its original value (it defines the head size); the removed heads
are recorded in ``config.pruned_heads`` (Hugging Face's own field for this), and
``config.intermediate_size`` / ``num_hidden_layers`` follow the weights whenever every layer agrees.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from edgecraft.errors import InputError
from edgecraft.torchkit.attention import AttentionImplementation, SwitchesAttention
from torch import nn

#: Submodule names inside one BERT-family encoder layer.
QUERY, KEY, VALUE = "attention.self.query", "attention.self.key", "attention.self.value"
SELF_ATTENTION = "attention.self"
ATTN_OUT = "attention.output.dense"
FFN_IN, FFN_OUT = "intermediate.dense", "output.dense"
_REQUIRED = (QUERY, KEY, VALUE, ATTN_OUT, FFN_IN, FFN_OUT)

Importance = Literal["l1", "l2", "taylor"]


@dataclass
class Encoder:
    """A BERT-family encoder inside ``root`` (the forward adapter, or the bare Hugging Face model)."""

    root: nn.Module
    #: The Hugging Face model (has ``.config``).
    model: nn.Module
    #: Qualified name of the layer list in ``root`` (e.g. ``model.encoder.layer``).
    prefix: str
    #: The module that owns the layer list (``encoder``), whose attribute ``layer`` is replaced on layer drops.
    owner: nn.Module
    attr: str

    @property
    def config(self) -> Any:
        return self.model.config

    @property
    def layers(self) -> nn.ModuleList:
        return getattr(self.owner, self.attr)

    def __len__(self) -> int:
        return len(self.layers)

    def layer_name(self, index: int) -> str:
        return f"{self.prefix}.{index}"

    def sub(self, index: int, name: str) -> nn.Module:
        return self.layers[index].get_submodule(name)

    @property
    def head_size(self) -> int:
        return int(self.sub(0, SELF_ATTENTION).attention_head_size)

    def heads(self, index: int) -> int:
        return int(self.sub(index, QUERY).out_features) // self.head_size

    def ffn(self, index: int) -> int:
        return int(self.sub(index, FFN_IN).out_features)

    def shape(self) -> dict[str, Any]:
        """Heads and FFN width per layer (for reports)."""
        return {"layers": len(self), "heads": [self.heads(i) for i in range(len(self))],
                "ffn": [self.ffn(i) for i in range(len(self))]}

    def parameters(self) -> Iterator[nn.Parameter]:
        """The encoder layers' parameters only (no embeddings, no pooler)."""
        return self.layers.parameters()

    def params_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


def find_encoder(module: nn.Module) -> Encoder | None:
    """The BERT-family encoder in ``module`` (None when there is none): the first ``*.layer`` list whose
    layers have query/key/value, attention output and FFN Linears; its model is the innermost
    enclosing Hugging Face ``PreTrainedModel``."""
    named = dict(module.named_modules())
    for name, sub in named.items():
        layers = getattr(sub, "layer", None)
        if not isinstance(layers, nn.ModuleList) or not len(layers):
            continue
        known = dict(layers[0].named_modules())
        if not all(n in known for n in _REQUIRED):
            continue
        holders = [n for n, m in named.items() if hasattr(m, "config") and hasattr(m, "set_attn_implementation")
                   and (n == "" or name == n or name.startswith(n + "."))]
        if not holders:
            return None
        model = named[max(holders, key=len)]
        return Encoder(module, model, f"{name}.layer" if name else "layer", sub, "layer")
    return None


def require_encoder(module: nn.Module, *, where: str, what: str) -> Encoder:
    """:func:`find_encoder` or an error saying which layouts are supported."""
    encoder = find_encoder(module)
    if encoder is None:
        raise InputError(f"step {where}: {what} needs a BERT-family transformer encoder (BERT, RoBERTa, XLM-R, "
                         f"ELECTRA, MiniLM: layers with {', '.join(_REQUIRED)}), and this model has none",
                         hint="use a huggingface model source with such a model")
    return encoder


def encoder_config(path: Any) -> Any:
    """The Hugging Face config of a model folder (compile-time checks: no weights loaded)."""
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(str(path), local_files_only=True)


def config_supported(config: Any) -> bool:
    """Whether a config is of the BERT family this module edits (checked at compile time from config.json)."""
    return str(getattr(config, "model_type", "")) in {"bert", "roberta", "xlm-roberta", "electra", "camembert",
                                                      "data2vec-text", "xlm-roberta-xl", "ernie", "mpnet"} and \
        getattr(config, "num_attention_heads", None) is not None


# ---------------------------------------------------------------- importance
def _score(weight: torch.Tensor, kind: Importance) -> torch.Tensor:
    if kind == "taylor":
        if weight.grad is None:
            raise InputError("taylor importance needs gradients: run accumulate_gradients first")
        return (weight.detach() * weight.grad.detach()).abs()
    return weight.detach().abs() if kind == "l1" else weight.detach() ** 2


def head_scores(encoder: Encoder, index: int, kind: Importance) -> torch.Tensor:
    """Importance of every head of layer ``index``: its query/key/value rows and attention-output columns."""
    size = encoder.head_size
    n = encoder.heads(index)
    total = torch.zeros(n)
    for name in (QUERY, KEY, VALUE):
        total += _score(encoder.sub(index, name).weight, kind).view(n, size, -1).sum(dim=(1, 2))
    total += _score(encoder.sub(index, ATTN_OUT).weight, kind).view(-1, n, size).sum(dim=(0, 2))
    return total


def ffn_scores(encoder: Encoder, index: int, kind: Importance) -> torch.Tensor:
    """Importance of every FFN neuron of layer ``index``: its input row and output column."""
    return (_score(encoder.sub(index, FFN_IN).weight, kind).sum(dim=1)
            + _score(encoder.sub(index, FFN_OUT).weight, kind).sum(dim=0))


# ---------------------------------------------------------------- allocation
def uniform_keep(total: int, ratio: float, multiple: int = 1) -> int:
    """Units kept when ``ratio`` of ``total`` is removed (rounded to ``multiple``; may be 0: the caller checks)."""
    keep = math.floor(round(total * (1 - ratio), 9))
    return keep - keep % multiple if multiple > 1 and keep >= multiple else keep


def global_keep(scores: list[torch.Tensor], ratio: float, *, minimum: list[int], multiple: int = 1) -> list[int]:
    """Units per layer after removing the globally least important ``ratio`` of all units.

    Scores are divided by their layer's mean (Torch-Pruning's 'mean' normalisation) so layers of
    different scale compare; no layer drops below ``minimum``.
    """
    normalised = [s / s.mean().clamp_min(1e-12) for s in scores]
    total = sum(len(s) for s in scores)
    to_remove = total - math.floor(round(total * (1 - ratio), 9))
    order = sorted((float(v), i) for i, s in enumerate(normalised) for v in s)
    keep = [len(s) for s in scores]
    for _value, layer in order:
        if to_remove <= 0:
            break
        if keep[layer] - 1 < minimum[layer]:
            continue
        keep[layer] -= 1
        to_remove -= 1
    if multiple > 1:
        # Nearest multiple (not floor), so the total stays close to the target.
        keep = [min(len(scores[i]), max(minimum[i], multiple * round(k / multiple))) for i, k in enumerate(keep)]
    return keep


def top(scores: torch.Tensor, keep: int) -> list[int]:
    """Indices of the ``keep`` highest scores, in their original order."""
    return sorted(int(i) for i in torch.argsort(scores, descending=True)[:keep])


# ---------------------------------------------------------------- surgery
def _replace(layer: nn.Module, name: str, new: nn.Module) -> None:
    layer.set_submodule(name, new)


def prune_heads(encoder: Encoder, index: int, keep: Sequence[int]) -> None:
    """Keep only heads ``keep`` of layer ``index`` (query/key/value rows, attention-output columns)."""
    from transformers.pytorch_utils import prune_linear_layer

    n, size = encoder.heads(index), encoder.head_size
    keep = sorted(set(int(h) for h in keep))
    if not keep:
        raise InputError(f"layer {encoder.layer_name(index)} would lose every attention head")
    if len(keep) == n:
        return
    layer = encoder.layers[index]
    rows = torch.tensor([h * size + j for h in keep for j in range(size)], dtype=torch.long)
    for name in (QUERY, KEY, VALUE):
        _replace(layer, name, prune_linear_layer(layer.get_submodule(name), rows, dim=0))
    _replace(layer, ATTN_OUT, prune_linear_layer(layer.get_submodule(ATTN_OUT), rows, dim=1))
    attention = layer.get_submodule(SELF_ATTENTION)
    attention.num_attention_heads = len(keep)
    attention.all_head_size = len(keep) * size
    pruned = dict(getattr(encoder.config, "pruned_heads", None) or {})
    # Heads are numbered in the layer as it was before this call; map back to the original numbering.
    original = [h for h in range(n + len(pruned.get(index, []))) if h not in set(pruned.get(index, []))]
    removed = sorted(set(pruned.get(index, [])) | {original[h] for h in range(n) if h not in keep})
    pruned[index] = removed
    encoder.config.pruned_heads = pruned


def prune_ffn(encoder: Encoder, index: int, keep: Sequence[int]) -> None:
    """Keep only FFN neurons ``keep`` of layer ``index``."""
    from transformers.pytorch_utils import prune_linear_layer

    keep_t = torch.tensor(sorted(set(int(k) for k in keep)), dtype=torch.long)
    if not len(keep_t):
        raise InputError(f"layer {encoder.layer_name(index)} would lose every FFN neuron")
    if len(keep_t) == encoder.ffn(index):
        return
    layer = encoder.layers[index]
    _replace(layer, FFN_IN, prune_linear_layer(layer.get_submodule(FFN_IN), keep_t, dim=0))
    _replace(layer, FFN_OUT, prune_linear_layer(layer.get_submodule(FFN_OUT), keep_t, dim=1))


def keep_layers(encoder: Encoder, indices: Sequence[int]) -> None:
    """Keep only encoder layers ``indices`` (in that order), the DistilBERT student initialisation."""
    if not indices or any(not 0 <= i < len(encoder) for i in indices):
        raise InputError(f"layer indices {list(indices)} are out of range for an encoder of {len(encoder)} layers")
    kept = nn.ModuleList([encoder.layers[i] for i in indices])
    for new_index, layer in enumerate(kept):
        for sub in layer.modules():
            if hasattr(sub, "layer_idx"):
                sub.layer_idx = new_index
    setattr(encoder.owner, encoder.attr, kept)
    pruned = dict(getattr(encoder.config, "pruned_heads", None) or {})
    encoder.config.pruned_heads = {new: pruned[old] for new, old in enumerate(indices) if old in pruned}
    sync_config(encoder)


def sync_config(encoder: Encoder) -> None:
    """Make the config say what the weights are (layer count; FFN width when every layer agrees)."""
    config = encoder.config
    config.num_hidden_layers = len(encoder)
    widths = {encoder.ffn(i) for i in range(len(encoder))}
    if len(widths) == 1:
        config.intermediate_size = widths.pop()


def check_consistent(encoder: Encoder) -> None:
    """Every layer's head bookkeeping matches its weights (what the attention forward relies on)."""
    for i in range(len(encoder)):
        attention = encoder.sub(i, SELF_ATTENTION)
        q = encoder.sub(i, QUERY)
        heads = attention.num_attention_heads * attention.attention_head_size
        assert attention.all_head_size == q.out_features == heads
        assert encoder.sub(i, ATTN_OUT).in_features == q.out_features
        assert encoder.sub(i, FFN_OUT).in_features == encoder.sub(i, FFN_IN).out_features


def match_layers(encoder: Encoder, patterns: Sequence[str]) -> dict[str, list[int]]:
    """Encoder layer indices matched by each pattern (a layer name, an fnmatch glob, or an index)."""
    names = [encoder.layer_name(i) for i in range(len(encoder))]
    found: dict[str, list[int]] = {}
    for pattern in patterns:
        hits = [i for i, name in enumerate(names) if fnmatch.fnmatchcase(name, pattern) or pattern == str(i)]
        found[pattern] = hits
    return found


# ---------------------------------------------------------------- attention implementation
class EagerAttention(AttentionImplementation):
    """Switch the encoders' models to eager attention while attention maps are read (SDPA returns none),
    then back."""

    def __init__(self, *roots: nn.Module) -> None:
        encoders = [find_encoder(r) for r in roots]
        super().__init__("eager", [enc.model for enc in encoders
                                   if enc is not None and isinstance(enc.model, SwitchesAttention)])


# ---------------------------------------------------------------- per-layer distillation terms
@dataclass
class LayerMatch:
    """Hidden-state and attention-map terms between student layers and the teacher layers they stand for.

    ``teacher_layers``/``teacher_elements`` are what the :class:`~edgecraft.torchkit.objectives.Teacher`
    taps (its cache keeps them per sample); ``loss(teacher_features)`` is the ``feature_loss`` hook of
    :class:`~edgecraft.torchkit.objectives.TeacherMatch`, reading the student's own tap. Hidden states:
    MSE divided by the teacher's variance (BERT hidden states have a few very large dimensions, so a
    raw MSE would weigh them only). Attention maps: KL(teacher ‖ student) per query row (MiniLM's
    self-attention transfer); when the student has fewer heads (pruned) the head-averaged maps are compared.
    """

    teacher_layers: list[str]
    teacher_elements: dict[str, int]
    student_tap: Any
    pairs: list[tuple[int, int]]
    hidden_weight: float
    attention_weight: float

    def loss(self, teacher_features: list[torch.Tensor]) -> torch.Tensor:
        student = self.student_tap.values()
        terms: list[torch.Tensor] = []
        for s, t in zip(student, teacher_features, strict=True):
            if s.dim() == 3:  # hidden state [batch, seq, hidden]
                terms.append(self.hidden_weight * ((s - t) ** 2).mean() / t.var().clamp_min(1e-12))
            else:  # attention probabilities [batch, heads, seq, seq]
                if s.shape[1] != t.shape[1]:
                    s, t = s.mean(dim=1, keepdim=True), t.mean(dim=1, keepdim=True)
                kl = torch.xlogy(t, t) - t * torch.log(s.clamp_min(1e-12))
                terms.append(self.attention_weight * kl.sum(dim=-1).mean())
        return torch.stack(terms).sum()

    def close(self) -> None:
        self.student_tap.close()


def layer_match(teacher: Encoder, student: Encoder, mapping: Sequence[int], *, hidden_weight: float,
                attention_weight: float) -> LayerMatch | None:
    """Terms pairing student layer ``j`` with teacher layer ``mapping[j]`` (None when both weights are 0)."""
    from edgecraft.torchkit.taps import LayerTap

    if hidden_weight <= 0 and attention_weight <= 0:
        return None
    t_root, s_root = teacher.prefix, student.prefix
    t_names: list[str] = []
    s_names: list[str] = []
    t_elements: dict[str, int] = {}
    s_elements: dict[str, int] = {}
    for j, i in enumerate(mapping):
        if hidden_weight > 0:
            t_names.append(f"{t_root}.{i}")
            s_names.append(f"{s_root}.{j}")
        if attention_weight > 0:
            t_name, s_name = f"{t_root}.{i}.{SELF_ATTENTION}", f"{s_root}.{j}.{SELF_ATTENTION}"
            t_names.append(t_name)
            s_names.append(s_name)
            t_elements[t_name] = 1
            s_elements[s_name] = 1
    tap = LayerTap(student.root, s_names, role="the student", elements=s_elements)
    return LayerMatch(t_names, t_elements, tap, list(enumerate(mapping)), hidden_weight, attention_weight)

