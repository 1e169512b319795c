"""Runtime-neutral int8 fake quantization: what QAT trains through and what the exported graph carries.

Why our own (about a hundred lines) rather than ``torch.ao.quantization`` QAT or NNCF's torch QAT: the
eager/FX ``torch.ao`` flow is deprecated in favour of torchao's PT2E, whose QAT needs a runtime-specific
quantizer (XNNPACK, x86 Inductor) and a ``torch.export`` graph that later torch steps and edgecraft's
trainer do not see as ordinary modules; NNCF's torch QAT ends in OpenVINO's own format. The scheme here is
the one both ONNX Runtime and OpenVINO run as int8 from an ONNX QDQ graph (measured, see
``tests/plugins/test_qat*.py`` and ``benchmarks/qat.py``):

* weights: int8, symmetric (zero point 0), one scale per output channel (``max |w| / 127``, recomputed from
  the weights at every step so the scale follows training);
* activations: uint8, asymmetric, one scale per tensor, range tracked by an exponential moving average of
  the batch min/max while ``observing`` (the first part of training), then frozen, so the ranges the model
  learned to live with are the ranges the graph carries.

Both use torch's own straight-through fake-quantize ops (``torch.fake_quantize_per_*_affine``), which the
dynamo ONNX exporter turns into QuantizeLinear/DequantizeLinear pairs with the learned scales as constants.
After :meth:`QuantWeight.finalize` a layer holds its weights as int8 and dequantizes them with
``quantized_decomposed.dequantize_per_channel``: the graph then stores int8 weight initializers (4x smaller)
feeding DequantizeLinear, the form ONNX Runtime fuses into QLinearConv/QGemm and OpenVINO into u8/i8 kernels.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.ao.quantization.fx._decomposed
from torch import nn
from torch.nn import functional as F

#: uint8 activations, int8 weights. ONNX allows the full (-128, 127) range for int8; a symmetric scale of
#: max|w|/127 never produces -128, so the weights stay in the symmetric range every int8 kernel accepts.
ACT_MIN, ACT_MAX = 0, 255
W_MIN, W_MAX = -128, 127


class ActivationQuant(nn.Module):
    """Fake-quantizes one activation tensor to uint8 with a per-tensor range (EMA while observing, then frozen)."""

    def __init__(self, momentum: float = 0.01) -> None:
        super().__init__()
        self.momentum = momentum
        self.register_buffer("low", torch.tensor(0.0))
        self.register_buffer("high", torch.tensor(0.0))
        self.register_buffer("scale", torch.tensor(1.0))
        self.register_buffer("zero_point", torch.tensor(0, dtype=torch.int32))
        self.register_buffer("seen", torch.tensor(False))
        #: 'calibrate': running min/max (no quantization yet); 'observe': EMA of batch ranges while training;
        #: 'frozen': ranges fixed (evaluation and export always use the stored scale).
        self.phase = "calibrate"
        #: (scale, zero point) as Python numbers once frozen: constants to torch.export, so the graph carries them.
        self.frozen: tuple[float, int] | None = None

    def freeze(self) -> None:
        """Fix the range: from now on the stored scale is used in training, evaluation and export alike."""
        self.phase = "frozen"
        self.frozen = (float(self.scale), int(self.zero_point))

    @torch.no_grad()
    def _observe(self, x: torch.Tensor) -> None:
        low, high = x.detach().min().float(), x.detach().max().float()
        if not bool(self.seen):
            self.low.copy_(low)
            self.high.copy_(high)
            self.seen.fill_(True)
        elif self.phase == "calibrate":
            self.low.copy_(torch.minimum(self.low, low))
            self.high.copy_(torch.maximum(self.high, high))
        else:
            self.low.lerp_(low, self.momentum)
            self.high.lerp_(high, self.momentum)
        self._update_qparams()

    @torch.no_grad()
    def _update_qparams(self) -> None:
        low, high = torch.clamp(self.low, max=0.0), torch.clamp(self.high, min=0.0)  # zero must be exact
        scale = torch.clamp((high - low) / (ACT_MAX - ACT_MIN), min=1e-8)
        self.scale.copy_(scale)
        self.zero_point.copy_(torch.clamp(torch.round(-low / scale), ACT_MIN, ACT_MAX).to(torch.int32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.phase == "calibrate":
            self._observe(x)
            return x
        if self.frozen is not None:
            scale, zero = self.frozen
            if self.training:  # straight-through gradient (the decomposed ops below have none)
                return torch.fake_quantize_per_tensor_affine(x, scale, zero, ACT_MIN, ACT_MAX)
            # Evaluation and export: the same numbers, as ops torch.export and the ONNX exporter know (Q/DQ).
            q = torch.ops.quantized_decomposed.quantize_per_tensor(x, scale, zero, ACT_MIN, ACT_MAX, torch.uint8)
            return torch.ops.quantized_decomposed.dequantize_per_tensor(q, scale, zero, ACT_MIN, ACT_MAX, torch.uint8)
        if self.phase == "observe" and self.training:
            self._observe(x)
        return torch.fake_quantize_per_tensor_affine(x, self.scale, self.zero_point, ACT_MIN, ACT_MAX)

    def facts(self) -> dict[str, Any]:
        return {"scale": float(self.scale), "zero_point": int(self.zero_point),
                "range": [round(float(self.low), 5), round(float(self.high), 5)]}

    def extra_repr(self) -> str:
        return f"phase={self.phase}, scale={float(self.scale):.4g}, zero_point={int(self.zero_point)}"


def weight_scale(weight: torch.Tensor, per_channel: bool) -> torch.Tensor:
    """Symmetric int8 scale(s) of ``weight``: max |w| / 127, per output channel (axis 0) or per tensor."""
    w = weight.detach()
    peak = w.abs().flatten(1).amax(1) if per_channel else w.abs().amax().reshape(1)
    return torch.clamp(peak / 127.0, min=1e-12).float()


class QuantWeight(nn.Module):
    """A Conv or Linear whose weights are int8-simulated (training) or int8 (after :meth:`finalize`)."""

    def __init__(self, layer: nn.Conv1d | nn.Conv2d | nn.Linear, per_channel: bool = True) -> None:
        super().__init__()
        self.layer = layer
        self.per_channel = per_channel
        self.finalized = False
        self.tensor_scale = 0.0

    def quantized_weight(self) -> torch.Tensor:
        if self.finalized:
            q = self.get_buffer("weight_int8")
            scale, zero = self.get_buffer("weight_scale"), self.get_buffer("weight_zero")
            if self.per_channel:
                return torch.ops.quantized_decomposed.dequantize_per_channel(q, scale, zero, 0, W_MIN, W_MAX,
                                                                            torch.int8)
            return torch.ops.quantized_decomposed.dequantize_per_tensor(q, self.tensor_scale, 0, W_MIN, W_MAX,
                                                                       torch.int8)
        w = self.layer.weight
        scale = weight_scale(w, self.per_channel)
        zero = torch.zeros_like(scale, dtype=torch.int32)
        if self.per_channel:
            return torch.fake_quantize_per_channel_affine(w, scale, zero, 0, W_MIN, W_MAX)
        return torch.fake_quantize_per_tensor_affine(w, scale[0], zero[0], W_MIN, W_MAX)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.quantized_weight()
        if isinstance(self.layer, nn.Linear):
            return F.linear(x, w, self.layer.bias)
        return self.layer._conv_forward(x, w, self.layer.bias)

    @torch.no_grad()
    def finalize(self) -> None:
        """Store the weights as int8 with their scales; the float weight is dropped (the layer keeps its bias)."""
        w = self.layer.weight.detach()
        scale = weight_scale(w, self.per_channel)
        shape = (-1,) + (1,) * (w.dim() - 1) if self.per_channel else ()
        q = torch.clamp(torch.round(w / scale.reshape(shape)), -127, 127).to(torch.int8)
        self.register_buffer("weight_int8", q)
        self.register_buffer("weight_scale", scale)
        self.register_buffer("weight_zero", torch.zeros_like(scale, dtype=torch.int64))
        self.tensor_scale = float(scale[0])  # per-tensor: a constant to torch.export (a tensor's .item() is not)
        bias = self.layer.bias
        del self.layer.weight
        self.layer.register_buffer("weight", torch.empty(0))  # attribute kept for code that reads it; unused
        if bias is not None:
            self.layer.bias = nn.Parameter(bias.detach().clone(), requires_grad=False)
        self.finalized = True

    def facts(self) -> dict[str, Any]:
        scale = self.get_buffer("weight_scale") if self.finalized else weight_scale(self.layer.weight,
                                                                                    self.per_channel)
        return {"op": type(self.layer).__name__, "scales": int(scale.numel()),
                "scale_range": [float(scale.min()), float(scale.max())]}
