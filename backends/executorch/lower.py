"""``torch.export`` → ``to_edge_transform_and_lower`` with the XNNPACK partitioner → ``.pte`` bytes, and what ran where.

ExecuTorch's documented path for XNNPACK (executorch 1.5.1): the partitioner hands every subgraph XNNPACK
supports to the delegate; what it does not support stays as portable ExecuTorch operators. The facts
counted here (nodes inside delegates vs left outside, int8 quantize/dequantize nodes taken by XNNPACK)
are read from the lowered edge program, so the report says what the runtime executes, not what was asked.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from edgecraft.backends.executorch.options import EXPORT_BATCH, ExecutorchXnnpackOptions
from edgecraft.errors import InputError
from edgecraft.modelio import ModelIO
from edgecraft.models import TorchModel

#: Edge-dialect operator names that mark int8 tensors in a PT2E-quantized graph.
_QUANT_MARKERS = ("quantize_per_tensor", "quantize_per_channel", "dequantize_per_tensor", "dequantize_per_channel",
                  "choose_qparams")
_PLUMBING = ("getitem", "executorch_call_delegate")
#: Edge-dialect operators that carry the arithmetic (what the precision shares count).
_COMPUTE = frozenset({"convolution", "linear", "addmm", "mm", "bmm"})


@dataclass
class LoweredProgram:
    """The backend's in-memory model: the serialized program and what the lowering found."""

    buffer: bytes
    io: ModelIO
    facts: dict[str, Any] = field(default_factory=dict)


def _op_name(node: Any) -> str:
    target = node.target
    return str(getattr(target, "__name__", None) or target).split("::")[-1]


def delegation_facts(edge_program: Any) -> dict[str, Any]:
    """Nodes inside XNNPACK delegates and outside them, and the int8 (quantize/dequantize) nodes delegated."""
    gm = edge_program.graph_module
    inside: Counter[str] = Counter()
    outside: Counter[str] = Counter()
    compute: Counter[str] = Counter()  # delegated compute ops by the dtype they compute in
    delegates = 0
    for node in gm.graph.nodes:
        if node.op == "get_attr" and hasattr(getattr(gm, str(node.target), None), "original_module"):
            delegates += 1
            lowered = getattr(gm, str(node.target))
            for inner in lowered.original_module.graph.nodes:
                if inner.op == "call_function":
                    inside[_op_name(inner)] += 1
                    if set(_op_name(inner).split(".")) & _COMPUTE:  # e.g. aten.convolution.default
                        compute[_dtype(inner)] += 1
        elif node.op == "call_function" and not any(p in _op_name(node) for p in _PLUMBING):
            outside[_op_name(node)] += 1
    int8 = sum(n for op, n in inside.items() if any(m in op for m in _QUANT_MARKERS))
    int8_outside = sum(n for op, n in outside.items() if any(m in op for m in _QUANT_MARKERS))
    return {"delegate": "XnnpackBackend", "delegated_subgraphs": delegates,
            "delegated_nodes": sum(inside.values()), "not_delegated_nodes": sum(outside.values()),
            "not_delegated_ops": dict(sorted(outside.items())),
            "int8_qdq_nodes_delegated": int8, "int8_qdq_nodes_not_delegated": int8_outside,
            "delegated_compute_by_dtype": dict(sorted(compute.items())),
            "precision": "int8" if int8 else ("fp16" if compute and set(compute) == {"float16"} else
                                              "fp16+fp32" if compute.get("float16") else "fp32")}


def _dtype(node: Any) -> str:
    """The dtype a delegated compute node works in: its first input's; 'int8' when that input is dequantized int8
    (XNNPACK fuses the quantize/dequantize pair into its int8 kernel)."""
    first = node.args[0] if node.args else None
    if getattr(first, "op", None) == "call_function" and "dequantize" in _op_name(first):
        return "int8"
    val = getattr(first, "meta", {}).get("val") if first is not None else None
    dtype = getattr(val, "dtype", None)
    return str(dtype).replace("torch.", "") if dtype is not None else "unknown"


def is_half(module: Any) -> bool:
    """Whether the torch module computes in half precision (the fp16 step's output: its float weights are fp16)."""
    import torch

    floats = [t for t in [*module.parameters(), *module.buffers()] if t.is_floating_point()]
    return bool(floats) and all(t.dtype == torch.float16 for t in floats)


def lower(model: TorchModel, options: ExecutorchXnnpackOptions) -> LoweredProgram:
    """Export ``model`` at batch :data:`EXPORT_BATCH`, lower it to XNNPACK and serialize it."""
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    module = model.module
    module.eval()  # not ``module = module.eval()``: an exported GraphModule's allowed eval() returns None
    try:
        example = tuple(model.example_inputs(batch=EXPORT_BATCH))
    except Exception as exc:
        raise InputError(f"the model's inputs have no concrete shape to export ({exc})",
                         hint="declare every input's shape in model.inputs") from exc
    half = is_half(module)
    if half:
        # The fp16 step's half module (.fp16): XNNPACK's fp16 path; float inputs are cast to half by the session.
        example = tuple(t.half() if t.is_floating_point() else t for t in example)
    with torch.no_grad():
        program = torch.export.export(module, example)
    edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
    facts = delegation_facts(edge.exported_program())
    facts["half_inputs"] = half
    buffer = edge.to_executorch().buffer
    facts["export_batch"] = EXPORT_BATCH
    return LoweredProgram(bytes(buffer), model.io, facts)
