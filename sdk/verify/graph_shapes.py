"""Concrete tensor shapes of an ONNX graph, for counting its compute (:mod:`edgecraft.verify.compute`).

ONNX's shape inference (with ``data_prop``) resolves most exported graphs once the inputs have concrete
shapes. It stops where shape arithmetic feeds an op whose inference reads only initializers (Slice,
Range): a TorchScript export slices its position ids to the input's length and reshapes by shapes it
computes from ``Shape``, so every MatMul after the embeddings stays unshaped. ONNX Runtime's symbolic
shape inference raises on the same graph (onnxruntime 1.32: a None shape in Expand). What is added
here is the missing step: with the inputs' shapes fixed these are small integer computations, each
evaluated by ONNX's own reference implementation of its op (``onnx.reference``) and put in as a
constant, then inference runs again. Inference runs on a copy without the weights' data, since it
serializes the whole model on every call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

#: Rounds of folding then inference (each can resolve Shape ops the previous one could not).
MAX_FOLD_ROUNDS = 4
#: Integer ops that compute shapes in exported graphs (TorchScript: Shape -> Gather -> Unsqueeze -> Concat).
_SHAPE_OPS = frozenset({"Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast", "Add", "Sub", "Mul",
                        "Div", "Equal", "Where", "Range", "ConstantOfShape", "Identity", "Reshape", "Expand",
                        "Min", "Max", "Neg", "Not", "Less", "Greater", "ReduceProd"})
#: Folded tensors larger than this are not shapes (position-id tables and the like are left alone).
_MAX_FOLDED = 4096


def prod(dims: Any) -> int:
    out = 1
    for d in dims:
        out *= int(d)
    return out


def int_attr(node: Any, name: str, default: int = 0) -> int:
    return next((int(a.i) for a in node.attribute if a.name == name), default)


def subgraphs(node: Any) -> list[tuple[str, Any]]:
    """(attribute name, GraphProto) of a control-flow node's bodies (If branches, Loop/Scan bodies)."""
    return [(a.name, a.g) for a in node.attribute if a.HasField("g")]


def _collect_shapes(graph: Any, out: dict[str, tuple[int, ...]]) -> None:
    for value in [*graph.input, *graph.value_info, *graph.output]:
        if _concrete(value):
            out[value.name] = tuple(int(d.dim_value) for d in value.type.tensor_type.shape.dim)
    for init in graph.initializer:
        out[init.name] = tuple(int(d) for d in init.dims)
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and attr.HasField("t"):
                    out[node.output[0]] = tuple(int(d) for d in attr.t.dims)
        for _, body in subgraphs(node):  # shape inference writes the bodies' value_info into them
            _collect_shapes(body, out)


def _inferred(model: Any) -> dict[str, tuple[int, ...]]:
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # an op shape inference does not know (a contrib op): keep what the file says
        inferred = model
    out: dict[str, tuple[int, ...]] = {}
    _collect_shapes(inferred.graph, out)
    return out


def _concrete(value: Any) -> bool:
    tensor = value.type.tensor_type
    return bool(value.type.HasField("tensor_type") and tensor.HasField("shape")
                and all(d.HasField("dim_value") for d in tensor.shape.dim))


def _skeleton(model: Any) -> Any:
    """``model`` without its large initializers' data (each becomes a graph input of its dtype and shape)
    and without value_info that is not concrete.

    Shape inference serializes the whole model (weights included) on every call; only small tensors
    (shapes, axes, indices) carry values it reads."""
    import onnx

    graph = model.graph
    large = [t for t in graph.initializer if prod(t.dims) > _MAX_FOLDED]
    symbolic = [v for v in graph.value_info if not _concrete(v)]
    if not large and not symbolic:
        return model
    skeleton = onnx.ModelProto()
    skeleton.ir_version = model.ir_version
    skeleton.opset_import.extend(model.opset_import)
    skeleton.graph.name = graph.name
    skeleton.graph.node.extend(graph.node)
    skeleton.graph.input.extend(graph.input)
    skeleton.graph.output.extend(graph.output)
    # A quantizer's symbolic value_info ('unk__0') would win over what folding makes concrete: only concrete kept.
    skeleton.graph.value_info.extend(v for v in graph.value_info if _concrete(v))
    skeleton.graph.initializer.extend(t for t in graph.initializer if prod(t.dims) <= _MAX_FOLDED)
    named = {i.name for i in graph.input}
    skeleton.graph.input.extend(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                                for t in large if t.name not in named)
    return skeleton


def tensor_shapes(model: Any, needed: frozenset[str]) -> dict[str, tuple[int, ...]]:
    """Every tensor whose shape is fully known after shape inference (inputs, values, outputs, initializers),
    in the main graph and in every If/Loop/Scan body; shape arithmetic is folded where inference alone
    leaves the operands of an op in ``needed`` unknown (:func:`_fold_shape_arithmetic`)."""
    model = _skeleton(model)
    out = _inferred(model)
    for _ in range(MAX_FOLD_ROUNDS):
        if not _unresolved(model.graph, out, needed):
            break
        folded = _fold_shape_arithmetic(model, out)
        if folded is None:
            break
        out = {**_inferred(folded), **out}
        model = folded
    return out


def _unresolved(graph: Any, shapes: Mapping[str, tuple[int, ...]], needed: frozenset[str]) -> bool:
    """Whether an op of ``needed`` still lacks the shape of its first two operands."""
    return any(node.op_type in needed and not all(name in shapes for name in node.input[:2] if name)
               for node in graph.node)


def _fold_shape_arithmetic(model: Any, shapes: Mapping[str, tuple[int, ...]]) -> Any | None:
    """A copy of ``model`` whose shape computations (see the module doc) are constants, or None when
    nothing folds: each is evaluated by ONNX's reference implementation of its op and replaced by its value."""
    import onnx
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    graph = model.graph
    values: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in graph.initializer
                                     if t.data_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32)
                                     and prod(t.dims) <= _MAX_FOLDED}
    for node in graph.node:
        attr = next((a for a in node.attribute if a.name == "value" and a.HasField("t")), None)
        if node.op_type == "Constant" and attr is not None and prod(attr.t.dims) <= _MAX_FOLDED:
            values[node.output[0]] = numpy_helper.to_array(attr.t)
    folded: dict[str, np.ndarray] = {}
    pending = [n for n in graph.node if n.op_type in _SHAPE_OPS and n.domain in ("", "ai.onnx")]
    tried: set[str] = set()  # evaluated without a foldable result (an error, or too large to be a shape)
    progress = True
    while progress:  # until nothing more folds: quantizers append nodes out of topological order
        progress = False
        for node in pending:
            if node.output[0] in values or node.output[0] in tried:
                continue
            if node.op_type == "Shape":
                if node.input[0] in shapes:
                    start = int_attr(node, "start", 0)
                    end = next((a.i for a in node.attribute if a.name == "end"), None)
                    folded[node.output[0]] = values[node.output[0]] = np.array(shapes[node.input[0]][start:end],
                                                                               np.int64)
                    progress = True
                continue
            inputs = [name for name in node.input if name]
            if not all(name in values for name in inputs):
                continue
            tried.add(node.output[0])
            try:
                results = ReferenceEvaluator(node).run(None, {name: values[name] for name in inputs})
            except Exception:  # an op the reference cannot evaluate here: leave it to inference
                continue
            for name, result in zip(node.output, results, strict=False):
                array = np.asarray(result)
                if array.size <= _MAX_FOLDED:
                    folded[name] = values[name] = array
                    progress = True
    if not folded:
        return None
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    nodes = [n for n in copy.graph.node if not (n.output and all(o in folded for o in n.output if o))]
    del copy.graph.node[:]
    copy.graph.node.extend(nodes)
    copy.graph.initializer.extend(numpy_helper.from_array(v, name) for name, v in folded.items())
    return copy
