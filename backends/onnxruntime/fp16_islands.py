"""Graph surgery for fp16 islands in an ONNX graph: which nodes an int8 QDQ graph computes in int8 (they stay as they
are), and the Cast pairs ONNX Runtime's float16 converter leaves between nodes it was told to keep in float32.

Why: int8 with fp16 fallback layers (the quantization step's ``float_precision: fp16``) converts only the layers the
int8 step left in float. ONNX Runtime's converter (``node_block_list``) keeps the quantize/dequantize groups in float32,
but it assumes every tensor becomes float16 and wraps each kept node in Casts, so between two kept nodes it writes a
float32 -> float16 -> float32 pair: a rounding the int8 graph never had, and a Cast in the middle of a
DequantizeLinear -> Conv -> QuantizeLinear group that ONNX Runtime would no longer fuse into ``QLinearConv``.
:func:`drop_cast_pairs` removes those pairs, so the int8 groups stay intact and Casts remain only at the edges of the
fp16 islands (checked on the emulated board: the groups ran as QLinearConv/QGemm, the island as fp16 NhwcFusedConv).
"""

from __future__ import annotations

from typing import Any

_FLOAT, _HALF = 1, 10  # onnx.TensorProto.FLOAT, FLOAT16
QDQ = frozenset({"QuantizeLinear", "DequantizeLinear"})
#: Ops of dynamic int8 (activations quantized at run time): not a QDQ graph, no fp16 islands built around them.
DYNAMIC_INT8 = frozenset({"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul",
                          "MatMulIntegerToFloat"})


def name_nodes(graph: Any) -> None:
    """Give every unnamed node a unique name (the converter's block list goes by name; '' would match them all)."""
    taken = {n.name for n in graph.node}
    for i, node in enumerate(graph.node):
        if not node.name:
            name = f"edgecraft_node_{i}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)


def int8_group_nodes(graph: Any) -> list[str]:
    """Names of the nodes of an int8 QDQ graph that ONNX Runtime computes in int8 (or that only carry int8 data):
    every QuantizeLinear/DequantizeLinear, and every node whose inputs all come from DequantizeLinear and whose outputs
    all go to QuantizeLinear (a Conv with its weight, bias and activation dequantized; a pooling between two Q/DQ). The
    rest (a layer kept in float: its weight is a float initializer, or its output is not requantized) is float."""
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    group = []
    for node in graph.node:
        if node.op_type in QDQ:
            group.append(node.name)
            continue
        inputs = [i for i in node.input if i]
        users = [u for out in node.output for u in consumers.get(out, [])]
        if (inputs and all(i in producer and producer[i].op_type == "DequantizeLinear" for i in inputs)
                and users and all(u.op_type == "QuantizeLinear" for u in users)):
            group.append(node.name)
    return group


def _cast_to(node: Any) -> int | None:
    return next((a.i for a in node.attribute if a.name == "to"), None) if node.op_type == "Cast" else None


def drop_cast_pairs(graph: Any) -> int:
    """Remove every Cast(float32 -> float16) whose users are all Casts back to float32 (and those Casts): the tensor
    goes on in float32 as it was. Returns the number of pairs removed; the graph is left topologically sorted."""
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    removed: set[int] = set()
    rename: dict[str, str] = {}  # a removed Cast's output -> the float32 tensor it came from
    to_output: dict[str, str] = {}  # a float32 tensor -> the graph output a removed Cast wrote it to
    pairs = 0
    for node in graph.node:
        users = consumers.get(node.output[0], []) if _cast_to(node) == _HALF else []
        if not users or node.output[0] in outputs or not all(_cast_to(u) == _FLOAT for u in users):
            continue
        pairs += 1
        removed.add(id(node))
        for user in users:
            removed.add(id(user))
            if user.output[0] in outputs:
                to_output[node.input[0]] = user.output[0]
            else:
                rename[user.output[0]] = node.input[0]
    kept = [n for n in graph.node if id(n) not in removed]
    for node in kept:
        for k, name in enumerate(node.input):
            name = rename.get(name, name)
            node.input[k] = to_output.get(name, name)
        for k, name in enumerate(node.output):
            node.output[k] = to_output.get(name, name)
    _sort(graph, kept)
    return pairs


def _sort(graph: Any, nodes: list[Any]) -> None:
    """Replace the graph's nodes by ``nodes`` in topological order (the converter appends its Casts at the end)."""
    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    order: list[Any] = []
    pending = list(nodes)
    while pending:
        runnable = [n for n in pending if all(i in ready for i in n.input)]
        if not runnable:
            raise ValueError(f"the converted graph has a cycle or a missing input at {pending[0].name!r}")
        for node in runnable:
            order.append(node)
            ready.update(node.output)
        done = {id(n) for n in runnable}
        pending = [n for n in pending if id(n) not in done]
    del graph.node[:]
    graph.node.extend(order)
