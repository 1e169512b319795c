"""The forward adapter: a Hugging Face model as an ``nn.Module`` of positional tensors in, tensors out.

edgecraft's steps, exporter and metrics call ``module(*inputs)`` in the declared I/O order and
read tensors by position; a Hugging Face model takes keyword inputs and returns a ``ModelOutput``.
The adapter bridges the two and applies sentence-transformers pooling for embedding models. It
has one explicit parameter per input (not ``*inputs``) because torch.export matches
``dynamic_shapes`` to forward's parameters and would see varargs as a single input; the classes
live at module level so adapted models pickle (``torch.save``, executors that ship models).
Imported only when a model is loaded (it imports torch).
"""

from __future__ import annotations

from typing import Any

import torch
from edgecraft.errors import InputError


class HFForward(torch.nn.Module):
    """Calls the wrapped model with keyword inputs; returns the task's tensors."""

    def __init__(self, model: torch.nn.Module, input_names: list[str], task: str, pooling: str = "none",
                 normalize: bool = False) -> None:
        super().__init__()
        self.model = model
        self.input_names = tuple(input_names)
        self.task = task
        self.pooling = pooling
        self.normalize = normalize

    def run(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        kwargs = dict(zip(self.input_names, inputs, strict=True))
        out = self.model(**kwargs, return_dict=True)
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
                pooled = (hidden + (weights - 1.0) * 1e9).max(1).values
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
                         normalize: bool = False) -> HFForward:
    """The adapter taking exactly ``len(input_names)`` positional tensors, in eval mode."""
    cls = ADAPTERS.get(len(input_names))
    if cls is None:
        raise InputError(f"model: the tokenizer produces {len(input_names)} inputs ({input_names}); the Hugging Face "
                         f"source handles 1 to {max(ADAPTERS)}")
    return cls(model, input_names, task, pooling, normalize).eval()
