"""Put int8 simulation into a torch model: fold BatchNorm, wrap every Conv/Linear, quantize the tensors between.

Where the activation quantizers go decides what a runtime can fuse into integer kernels, so they follow the
QDQ layout ONNX Runtime and OpenVINO both recognise: every Conv/Linear reads a quantized input and writes a
quantized output, taken *after* a ReLU/ReLU6 that directly follows it (the runtimes fold that activation into
the quantized output range: ONNX Runtime removes a Relu or Clip in front of a QuantizeLinear whose range it
covers). One quantizer per tensor: a tensor both written by one layer and read by the next is quantized once.

The model is traced with ``torch.fx`` (BatchNorm folded by ``torch.fx.experimental.optimization.fuse``, in
eval mode: QAT fine-tunes the folded weights, the form the runtimes run). A model fx cannot trace (data-
dependent control flow) is refused with the tracer's reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import torch
from edgecraft.plugins.quantization.qat.fakequant import ActivationQuant, QuantWeight
from torch import fx, nn
from torch.nn import functional as F

_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Linear)
_ACT_MODULES = (nn.ReLU, nn.ReLU6)
_ACT_FUNCTIONS = {torch.relu, F.relu, F.relu6, torch.nn.functional.hardtanh}


class NotTraceable(Exception):
    """The model cannot be traced by torch.fx."""


@dataclass
class Prepared:
    module: fx.GraphModule
    weights: dict[str, QuantWeight]
    activations: dict[str, ActivationQuant]


def _is_activation(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules.get(str(node.target)), _ACT_MODULES)
    if node.op == "call_function":
        return node.target in _ACT_FUNCTIONS
    return node.op == "call_method" and node.target in ("relu", "relu_")


def prepare(module: nn.Module, *, per_channel: bool = True) -> Prepared:
    """A traced copy of ``module`` with BatchNorm folded, int8-simulated weights and activation quantizers."""
    from torch.fx.experimental.optimization import fuse

    try:
        traced = fuse(module.eval(), inplace=False)
    except Exception as exc:
        raise NotTraceable(f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}") from exc
    assert isinstance(traced, fx.GraphModule)
    modules = dict(traced.named_modules())
    graph = traced.graph
    weights: dict[str, QuantWeight] = {}
    layer_nodes: list[fx.Node] = []
    for node in list(graph.nodes):
        if node.op == "call_module" and isinstance(modules.get(str(node.target)), _LAYERS):
            name = str(node.target)
            wrapped = QuantWeight(cast(nn.Conv2d, modules[name]), per_channel=per_channel)
            _set_submodule(traced, name, wrapped)
            weights[name] = wrapped
            layer_nodes.append(node)
    to_quantize: list[fx.Node] = []
    for node in layer_nodes:
        source = node.args[0]
        if isinstance(source, fx.Node) and source not in to_quantize:
            to_quantize.append(source)
        out = node
        users = list(node.users)
        if len(users) == 1 and _is_activation(users[0], modules):
            out = users[0]
        if out not in to_quantize:
            to_quantize.append(out)
    activations: dict[str, ActivationQuant] = {}
    for i, node in enumerate(to_quantize):
        name = f"qat_act_{i}"
        quant = ActivationQuant()
        traced.add_module(name, quant)
        activations[name] = quant
        with graph.inserting_after(node):
            q = graph.call_module(name, (node,))
        node.replace_all_uses_with(q, delete_user_cb=_not(q))
    graph.lint()
    traced.recompile()
    for param in traced.parameters():  # fusing copies requires_grad from the source, which may be frozen
        param.requires_grad_(True)
    return Prepared(traced, weights, activations)


def _not(q: fx.Node) -> Callable[[fx.Node], bool]:
    return lambda user: user is not q


def _set_submodule(root: nn.Module, dotted: str, new: nn.Module) -> None:
    parent_name, _, leaf = dotted.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, leaf, new)


def set_phase(prepared: Prepared, phase: str) -> None:
    """'calibrate', 'observe' or 'frozen' for every activation quantizer."""
    for quant in prepared.activations.values():
        if phase == "frozen":
            quant.freeze()
        else:
            quant.phase, quant.frozen = phase, None


def finalize(prepared: Prepared) -> fx.GraphModule:
    """Fix every range, store weights as int8: the module exports as a QDQ graph with the learned scales."""
    set_phase(prepared, "frozen")
    for layer in prepared.weights.values():
        layer.finalize()
    return prepared.module.eval()
