"""A guard around oneDNN's strided 1×1 convolution weight gradient, for every backward pass we run.

Why: oneDNN (the CPU convolution library inside torch 2.13, oneDNN 3.12) computes the weight
gradient of a **1×1 convolution with stride > 1 and fewer input channels than its register block**
(16 on AVX-512, 8 on AVX2) through a "reduce-to-unit-stride" workspace that it overruns for
channels-last activations (upstream oneDNN issue 6035). Depending on heap layout the result is a
segfault, ``free(): invalid next size`` or silently wrong gradients. Channel pruning produces
exactly that shape: a ResNet shortcut projection whose input was cut to 8 channels (the digits
model at pruning ratio ≥ 0.6 crashed in its first fine-tuning epoch).

What: while the guard is active, each such convolution computes ``conv1x1(x[:, :, ::s, ::s])``
with stride 1 instead. For a 1×1 kernel without padding this is the same function (the strided
kernel only ever reads those pixels), forward and backward, and stride 1 takes oneDNN's direct
path, which has no workspace. Only training is guarded: exported and measured graphs keep the
original strided convolution. Written by hand because neither torch nor oneDNN exposes a switch
for one kernel (disabling oneDNN for all of training costs 2.5× on the digits model).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

#: The widest register block oneDNN uses for f32 input channels (AVX-512); any multiple is safe.
_SAFE_CHANNEL_MULTIPLE = 16


def _is_affected(module: nn.Module) -> bool:
    if not isinstance(module, nn.Conv2d) or (isinstance(module.padding, str) and module.padding != "valid"):
        return False
    no_padding = module.padding == "valid" or tuple(module.padding) == (0, 0)
    return (tuple(module.kernel_size) == (1, 1) and max(module.stride) > 1 and no_padding
            and module.groups == 1 and tuple(module.dilation) == (1, 1)
            and module.in_channels % _SAFE_CHANNEL_MULTIPLE != 0)


def affected_convolutions(model: nn.Module) -> list[str]:
    """Names of the convolutions the guard reroutes (for tests and the step's notes)."""
    return [name for name, module in model.named_modules() if _is_affected(module)]


def _unit_stride_forward(conv: nn.Conv2d) -> Callable[[torch.Tensor], torch.Tensor]:
    stride_h, stride_w = conv.stride

    def forward(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x[..., ::stride_h, ::stride_w], conv.weight, conv.bias)

    return forward


@contextmanager
def strided_pointwise_guard(model: nn.Module) -> Iterator[list[str]]:
    """Reroute the affected convolutions of ``model`` for the duration (yields their names)."""
    patched: list[tuple[nn.Conv2d, object]] = []
    names: list[str] = []
    for name, module in model.named_modules():
        if _is_affected(module):
            assert isinstance(module, nn.Conv2d)
            patched.append((module, module.__dict__.get("forward")))
            # An instance attribute shadows the class's forward (nn.Module.__call__ calls self.forward).
            module.__dict__["forward"] = _unit_stride_forward(module)
            names.append(name)
    try:
        yield names
    finally:
        for module, previous in patched:
            if previous is None:
                del module.forward
            else:
                module.__dict__["forward"] = previous
