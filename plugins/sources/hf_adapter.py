"""The forward adapter: a Hugging Face model as an ``nn.Module`` of positional tensors in, tensors out.

edgecraft's steps, exporter and metrics call ``module(*inputs)`` in the declared I/O order and
read tensors by position; a Hugging Face model takes keyword inputs and returns a ``ModelOutput``.
The adapter bridges the two and applies sentence-transformers pooling for embedding models. It
has one explicit parameter per input (not ``*inputs``) because torch.export matches
``dynamic_shapes`` to forward's parameters and would see varargs as a single input; the classes
live at module level so adapted models pickle (``torch.save``, executors that ship models).
Imported only when a model is loaded (it imports torch).

The attention mask: Hugging Face models turn the 0/1 ``attention_mask`` into an additive mask
filled with ``finfo(float32).min`` (-3.4e38). Exported, that constant flows into the attention
scores, and int8 calibration that sees it overflows (``numpy: overflow encountered in reduce``)
or spends the whole int8 range on it: NNCF's default quantization of all-MiniLM-L6-v2 fell to
embedding cosine 0.12 with it and 0.61 with a finite mask. So when the model accepts one, the
adapter passes the additive mask itself, with BERT's original -10000 (``exp(-10000)`` is 0 in
float32, so outputs are unchanged); :func:`make_forward_adapter` checks that and falls back to the
0/1 mask otherwise.
"""

from __future__ import annotations

from typing import Any

import torch
from edgecraft.errors import InputError

#: BERT's original additive mask value: finite (no -3.4e38 in the exported graph), and exp(-10000) == 0.
MASK_VALUE = -10000.0


class HFForward(torch.nn.Module):
    """Calls the wrapped model with keyword inputs; returns the task's tensors."""

    def __init__(self, model: torch.nn.Module, input_names: list[str], task: str, pooling: str = "none",
                 normalize: bool = False, additive_mask: bool = False) -> None:
        super().__init__()
        self.model = model
        self.input_names = tuple(input_names)
        self.task = task
        self.pooling = pooling
        self.normalize = normalize
        #: Pass attention_mask as a [batch, 1, 1, seq] additive float mask of 0 / -10000 (see the module doc).
        self.additive_mask = additive_mask

    def run(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        kwargs = dict(zip(self.input_names, inputs, strict=True))
        model_kwargs = dict(kwargs)
        mask = kwargs.get("attention_mask")
        if self.additive_mask and mask is not None:
            model_kwargs["attention_mask"] = (1.0 - mask[:, None, None, :].to(torch.float32)) * MASK_VALUE
        out = self.model(**model_kwargs, return_dict=True)
        if self.task == "question-answering":
            return out.start_logits, out.end_logits
        if self.task != "feature-extraction":
            return out.logits
        hidden = out.last_hidden_state
        if self.pooling == "none":
            return hidden
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = kwargs.get("attention_mask")
            weights = (torch.ones(hidden.shape[:2], dtype=hidden.dtype, device=hidden.device) if mask is None
                       else mask.to(hidden.dtype)).unsqueeze(-1)
            if self.pooling == "mean":  # sentence-transformers' mean: padding tokens do not count
                pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            else:  # max over real tokens only
                pooled = (hidden + (1.0 - weights) * MASK_VALUE).max(1).values
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2.0, dim=1)
        return pooled


class HFForward1(HFForward):
    def forward(self, a: torch.Tensor) -> Any:
        return self.run(a)


class HFForward2(HFForward):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> Any:
        return self.run(a, b)


class HFForward3(HFForward):
    def forward(self, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> Any:
        return self.run(a, b, c)


class HFForward4(HFForward):
    def forward(self, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor) -> Any:
        return self.run(a, b, c, d)


ADAPTERS: dict[int, type[HFForward]] = {1: HFForward1, 2: HFForward2, 3: HFForward3, 4: HFForward4}


def make_forward_adapter(model: torch.nn.Module, input_names: list[str], task: str, pooling: str = "none",
                         normalize: bool = False, *, sequence_length: int = 8) -> HFForward:
    """The adapter taking exactly ``len(input_names)`` positional tensors, in eval mode.

    Uses the finite additive attention mask when the model gives the same outputs with it as with
    its own 0/1 masking (checked on a padded stand-in batch); otherwise the model's own masking.
    """
    cls = ADAPTERS.get(len(input_names))
    if cls is None:
        raise InputError(f"model: the tokenizer produces {len(input_names)} inputs ({input_names}); the Hugging Face "
                         f"source handles 1 to {max(ADAPTERS)}")
    plain = cls(model, input_names, task, pooling, normalize).eval()
    if "attention_mask" not in input_names:
        return plain
    finite = cls(model, input_names, task, pooling, normalize, additive_mask=True).eval()
    return finite if _same_outputs(plain, finite, input_names, max(2, sequence_length)) else plain


def _same_outputs(plain: HFForward, finite: HFForward, input_names: list[str], length: int) -> bool:
    """Whether both adapters agree on a batch whose second sample is half padding."""
    inputs = []
    for name in input_names:
        tensor = torch.ones(2, length, dtype=torch.int64) if name != "token_type_ids" else \
            torch.zeros(2, length, dtype=torch.int64)
        if name == "attention_mask":
            tensor[1, length // 2:] = 0
        inputs.append(tensor)
    try:
        with torch.no_grad():
            want, got = plain(*inputs), finite(*inputs)
    except Exception:
        return False  # the model rejects a 4-D float mask
    want_t = want if isinstance(want, tuple) else (want,)
    got_t = got if isinstance(got, tuple) else (got,)
    return all(w.shape == g.shape and torch.allclose(w, g, atol=1e-4, rtol=1e-4) for w, g in zip(want_t, got_t,
                                                                                                  strict=True))
