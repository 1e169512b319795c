"""Sequential whitening: each factorized Linear refitted on the inputs the factorized layers before it produce.

One-shot whitening (:mod:`.whiten`) measures every layer's inputs in the *original* model, so each
layer is truncated as if the layers before it were exact. They are not: on all-MiniLM-L6-v2 cut to 65%
of the encoder Linears' params, each factorized layer's error reaches the next layers' inputs and the
errors compound through six blocks. SVD-LLM v2 and the sequential variants of post-training compression
(GPTQ's and SparseGPT's layer-by-layer order, which feed each layer the already-compressed layers'
outputs) fix this by fitting layers in forward order, each on its *current* inputs. Two fits:

* ``sequential``: the whitening statistics come from the current inputs ``X'``; the target is the
  original layer applied to them, ``‖(W - W') X'‖`` (SVD-LLM v2's update).
* ``sequential_refit``: the target is the original layer's output on the original model's inputs,
  ``‖W X - W' X'‖``; its rank-r optimum is the whitened truncation of the least-squares map
  ``W C_xx' C_x'x'⁻¹`` (see :func:`.whiten.whitened_basis`), so each layer also undoes, as far as a linear
  map of its own inputs can, what the factorized layers upstream changed.

The ranks are those already chosen (by the one-shot sensitivities); only the factors change. The
statistics are paired per token: each calibration sample runs through the original model and the
model being refitted, cut to its own length (no padding rows), and the forward stops at the layer
being fitted (a hook raises), so a layer costs about one forward of each model per sample. Written
here for the same reason as :mod:`.whiten`: no library does this for arbitrary ``nn.Linear`` layers.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from edgecraft.plugins.factorization.whiten import activation_aware_linear, whitened_basis
from edgecraft.torchkit.data import TorchData
from edgecraft.torchkit.taps import inputs_reaching
from torch import nn

#: The ``whitening`` values: statistics of the original model (one pass), or layer by layer in forward order.
WHITENINGS = ("one_shot", "sequential", "sequential_refit")


def _capture(model: nn.Module, name: str, inputs: list[torch.Tensor]) -> torch.Tensor | None:
    """The rows (tokens) reaching ``name`` in one forward of ``model``, in float64; None if it is not called."""
    args = inputs_reaching(model, model.get_submodule(name), inputs)
    return None if args is None else args[0].detach().reshape(-1, args[0].shape[-1]).to(torch.float64)


@torch.no_grad()
def forward_order(model: nn.Module, names: list[str], data: TorchData) -> list[str]:
    """``names`` in the order the forward pass first calls them (one sample); uncalled ones last, as given."""
    seen: list[str] = []

    def hook(name: str) -> Callable[[nn.Module, tuple[torch.Tensor, ...]], None]:
        def record(_module: nn.Module, _args: tuple[torch.Tensor, ...]) -> None:
            if name not in seen:
                seen.append(name)
        return record

    handles = [model.get_submodule(n).register_forward_pre_hook(hook(n)) for n in names]
    try:
        for batch in data.take(1).batches(1, trim=True):
            model(*batch.inputs)
    finally:
        for handle in handles:
            handle.remove()
    return seen + [n for n in names if n not in seen]


@torch.no_grad()
def paired_moments(original: nn.Module, current: nn.Module, name: str, data: TorchData,
                   ) -> tuple[torch.Tensor, torch.Tensor, int] | None:
    """``(Σ x'x'ᵀ, Σ x x'ᵀ, rows)`` of layer ``name``: ``x`` its inputs in ``original``, ``x'`` in ``current``."""
    moment: torch.Tensor | None = None
    cross: torch.Tensor | None = None
    rows = 0
    # Token inputs: one sample per forward, cut to its own length, so no padding position is counted.
    batch_size = 1 if data.padding_mask() is not None else 32
    for batch in data.batches(batch_size, trim=True):
        x = _capture(original, name, list(batch.inputs))
        x_now = _capture(current, name, list(batch.inputs))
        if x is None or x_now is None:
            continue
        moment = x_now.T @ x_now if moment is None else moment + x_now.T @ x_now
        cross = x.T @ x_now if cross is None else cross + x.T @ x_now
        rows += int(x.shape[0])
    if moment is None or cross is None:
        return None
    return moment, cross, rows


def sequential_whitening(original: nn.Module, model: nn.Module, ranks: dict[str, int], data: TorchData, *,
                         refit: bool) -> list[str]:
    """Refactorize the Linears ``ranks`` names (in ``model``, already factorized at those ranks) in forward
    order, each on its current inputs; ``original`` holds the unfactorized layers under the same names.

    ``refit``: the target is the original outputs on the original inputs (``sequential_refit``), else the
    original layer on the current inputs (``sequential``). Returns the layers refitted, in order.
    """
    was_training = (original.training, model.training)
    original.eval()
    model.eval()
    done: list[str] = []
    try:
        for name in forward_order(model, list(ranks), data):
            layer = original.get_submodule(name)
            if not isinstance(layer, nn.Linear):
                raise ValueError(f"sequential whitening: {name!r} is a {type(layer).__name__}, not a Linear layer")
            stats = paired_moments(original, model, name, data)
            if stats is None:
                continue  # not reached by the calibration data: its one-shot factors stay
            moment, cross, rows = stats
            basis = whitened_basis(layer, moment, rows, cross=cross if refit else None)
            model.set_submodule(name, activation_aware_linear(layer, ranks[name], basis))
            done.append(name)
    finally:
        original.train(was_training[0])
        model.train(was_training[1])
    return done
