"""Switch the attention implementation of the Hugging Face models inside a module, for a while.

Two callers need it. Distillation reads attention maps, which SDPA never materialises, so the
teacher and student run ``eager`` while they train. The ONNX export picks the implementation whose
graph the runtimes run fastest: with transformers' ``sdpa`` the exporters write the decomposed
``scaled_dot_product_attention`` (a Reshape/Transpose chain for Kᵀ, the scale applied to Q and K
separately, NaN guards around the softmax), with ``eager`` the textbook MatMul, scale, mask Add,
Softmax, MatMul that ONNX Runtime's optimizers know. Measured on all-MiniLM-L6-v2 (batch 1, sequence
64, 2 threads), the TorchScript export of the eager model ran 1.16-1.23x faster on ONNX Runtime than
the dynamo export of the SDPA model, with identical outputs (see :func:`edgecraft.model_source.export_onnx`).

transformers does the switching itself (``PreTrainedModel.set_attn_implementation``); what is added
here is finding every model in a wrapper (adapters, pooling heads, teacher/student pairs) and putting
each one back afterwards, also when the body raises.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import nn


@runtime_checkable
class SwitchesAttention(Protocol):
    """A Hugging Face model that can change its attention implementation (``set_attn_implementation``)."""

    config: Any

    def set_attn_implementation(self, attn_implementation: str) -> None: ...


def attention_models(module: nn.Module) -> list[nn.Module]:
    """The outermost Hugging Face models inside ``module`` (their submodules follow their config)."""
    found: list[tuple[str, nn.Module]] = []
    for name, sub in module.named_modules():
        if isinstance(sub, SwitchesAttention) and not any(name.startswith(f"{outer}.") or outer == ""
                                                          for outer, _ in found):
            found.append((name, sub))
    return [sub for _, sub in found]


def current_attention(model: nn.Module) -> str | None:
    """The implementation ``model`` runs now ('eager', 'sdpa', ...; None when its config does not say)."""
    return getattr(getattr(model, "config", None), "_attn_implementation", None)


class AttentionImplementation:
    """Context manager: ``models`` run ``implementation`` inside the block and their own one after it."""

    def __init__(self, implementation: str, models: list[nn.Module]) -> None:
        self.implementation = implementation
        self.models = models
        self.before: list[str | None] = []

    def __enter__(self) -> AttentionImplementation:
        for model in self.models:
            self.before.append(current_attention(model))
            try:
                model.set_attn_implementation(self.implementation)  # type: ignore[operator]
            except BaseException:
                self.__exit__()
                raise
        return self

    def __exit__(self, *exc: object) -> None:
        for model, previous in zip(self.models, self.before, strict=False):
            if previous and previous != self.implementation:
                model.set_attn_implementation(previous)  # type: ignore[operator]
        self.before = []
