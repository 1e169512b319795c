"""Read intermediate activations (forward hooks): by layer name for feature losses and shape probes, and the inputs
reaching one layer for layer-by-layer refits."""

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


class _Reached(Exception):
    """Raised by :func:`inputs_reaching`'s pre-hook: the rest of the forward is not needed."""


def inputs_reaching(root: nn.Module, module: nn.Module, inputs: list[torch.Tensor]) -> tuple[Any, ...] | None:
    """The positional arguments ``module`` is first called with in one forward of ``root`` on ``inputs``, the
    forward stopped right there (a pre-hook raises); None when the forward never calls it.

    The layer-by-layer refits (pruning's reconstruction, factorization's sequential whitening) need one layer's
    inputs per calibration batch, not the model's output: stopping early halves their cost on average."""
    box: list[tuple[Any, ...]] = []

    def hook(_module: nn.Module, args: tuple[Any, ...]) -> None:
        box.append(args)
        raise _Reached

    handle = module.register_forward_pre_hook(hook)
    try:
        root(*inputs)
    except _Reached:
        pass
    finally:
        handle.remove()
    return box[0] if box else None
