"""The compute OpenVINO's CPU plugin executes for an artifact: its runtime model, with per-layer precisions.

``CompiledModel.get_runtime_model()`` is the graph the plugin runs after its own fusions; every node's rt_info
names its layer type (``layerType``: Convolution, FullyConnected, MatMul, ...) and the precision it executes
in (``runtimePrecision``: u8/i8 for integer kernels, f32/bf16 otherwise; names checked on OpenVINO 2026.4).
An NNCF int8 model's FakeQuantize ops are folded into those layers there, so this, not the ONNX lineage (which
a native NNCF step never touches), is where its int8 share is.

MACs per layer from the runtime model's static shapes: a Convolution's weight is ``[C_out, C_in, k...]`` or,
grouped, ``[G, C_out/G, C_in/G, k...]`` (so ``prod(out) * prod(weight's last spatial+1 dims)``);
FullyConnected ``prod(out) * K`` with K the data's last dimension; MatMul ``prod(out) * K``. Attention folded
into a ``Subgraph`` (the CPU plugin's snippets) is not visible per layer and is left out (said in the notes).
"""

from __future__ import annotations

from typing import Any

from edgecraft.backend import ExecutedCompute

COMPUTE = frozenset({"Convolution", "GroupConvolution", "FullyConnected", "MatMul", "Deconvolution"})
INT8 = frozenset({"u8", "i8"})


def _shape(port: Any) -> tuple[int, ...] | None:
    shape = port.get_partial_shape()
    return tuple(int(d) for d in shape.to_shape()) if shape.is_static else None


def _prod(dims: Any) -> int:
    out = 1
    for d in dims:
        out *= int(d)
    return out


def layer_macs(layer: str, inputs: list[tuple[int, ...] | None], out: tuple[int, ...] | None) -> int | None:
    """MACs of one runtime layer from its input and output shapes, None when one it needs is not static."""
    if out is None or len(inputs) < 2 or inputs[0] is None or inputs[1] is None:
        return None
    x, w = inputs[0], inputs[1]
    if layer in ("Convolution", "GroupConvolution"):
        return _prod(out) * _prod(w[len(w) - (len(out) - 1):])
    if layer == "Deconvolution":
        return _prod(x) * _prod(w[len(w) - (len(out) - 1):])
    if layer == "FullyConnected":
        return _prod(out) * int(x[-1])
    # MatMul: K is A's last dimension unless A is transposed (then it is the one matching B's)
    k = int(x[-1]) if len(x) < 2 or int(x[-1]) in (int(w[-2]) if len(w) >= 2 else -1, int(w[-1])) else int(x[-2])
    return _prod(out) * k


def runtime_compute(compiled: Any) -> ExecutedCompute:
    """Count a compiled model's runtime graph."""
    import openvino as ov

    macs = int8_macs = 0
    by_op: dict[str, int] = {}
    uncounted: list[str] = []
    subgraphs = 0
    precisions: dict[str, int] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        layer = info["layerType"].astype(str) if "layerType" in info else ""
        if layer == "Subgraph":
            subgraphs += 1
        if layer not in COMPUTE:
            continue
        precision = info["runtimePrecision"].astype(str).lower() if "runtimePrecision" in info else "?"
        n = layer_macs(layer, [_shape(op.input(i)) for i in range(op.get_input_size())],
                       _shape(op.output(0)) if op.get_output_size() else None)
        if n is None:
            uncounted.append(f"{layer} {op.get_friendly_name()}")
            continue
        macs += n
        by_op[layer] = by_op.get(layer, 0) + n
        precisions[precision] = precisions.get(precision, 0) + n
        if precision in INT8:
            int8_macs += n
    notes = ["MACs by runtime precision: " + ", ".join(f"{p} {n}" for p, n in sorted(precisions.items()))]
    if subgraphs:
        notes.append(f"{subgraphs} fused Subgraph node(s) (the CPU plugin's snippets, e.g. attention) are not "
                     "counted: their layers are not visible in the runtime model")
    if uncounted:
        notes.append(f"{len(uncounted)} layer(s) with dynamic shapes not counted: " + ", ".join(uncounted[:5]))
    return ExecutedCompute(source=f"openvino {ov.__version__.split('-')[0]} CPU runtime model (runtimePrecision "
                           "per layer)", macs=macs, int8_macs=int8_macs, by_op=by_op, uncounted=uncounted,
                           notes=notes)
