"""Read intermediate activations by layer name (forward hooks), for feature losses and shape probes."""

from __future__ import annotations

from typing import Any

import torch
from edgecraft.errors import InputError
from torch import nn


class LayerTap:
    """Keeps the latest output of named submodules while open; ``close()`` removes the hooks.

    torch offers the hooks (``register_forward_hook``) but nothing that names them by layer and
    refuses a typo, so that is what this adds. ``elements`` picks one tensor of a layer that returns
    a tuple (a Hugging Face attention module returns ``(output, attention map)``).
    """

    def __init__(self, model: nn.Module, names: list[str], *, role: str = "the model",
                 elements: dict[str, int] | None = None) -> None:
        modules = dict(model.named_modules())
        missing = [n for n in names if n not in modules]
        if missing:
            sample = [n for n in modules if n][:12]
            raise InputError(f"{role} has no layer named {missing} (its layers include {sample}"
                             f"{' ...' if len(modules) > 13 else ''})")
        self.names = list(names)
        #: name -> which element of a tuple output to keep (an attention layer returns (output, attention map)).
        self.elements = dict(elements or {})
        self.outputs: dict[str, torch.Tensor] = {}
        self._hooks = [modules[n].register_forward_hook(self._saver(n)) for n in names]

    def _saver(self, name: str) -> Any:
        def save(_module: nn.Module, _inputs: Any, output: Any) -> None:
            if name in self.elements and isinstance(output, tuple | list):
                output = output[self.elements[name]]
            if not isinstance(output, torch.Tensor):
                raise InputError(f"layer {name!r} returns {type(output).__name__}, not a tensor")
            self.outputs[name] = output
        return save

    def values(self) -> list[torch.Tensor]:
        """The taps' latest outputs, in the order the names were given."""
        return [self.outputs[n] for n in self.names]

    def close(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    def __enter__(self) -> LayerTap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
