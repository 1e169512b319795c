"""The compute ONNX Runtime executes for an artifact: its own optimized graph, counted at batch 1.

A QDQ file says nothing by itself about int8: ONNX Runtime fuses DequantizeLinear → Conv → QuantizeLinear into
QLinearConv at the extended level and above, and at 'basic' runs the same file in float (FIELD-NOTES). So the
graph the session builds with the target's options is dumped (``SessionOptions.optimized_model_filepath``) and
counted by the SDK's counter in *executed* mode: only integer kernels (QLinearConv, QGemm, MatMulInteger,
DynamicQuantizeMatMul, ...) count as int8.

Shapes come from running that graph, not from ONNX shape inference (which does not know ONNX Runtime's contrib
ops, the NCHWc layout ops, or reshapes computed from ``Shape``): the compute nodes' inputs and outputs are made
graph outputs and the graph runs once on the timed inputs cut to batch 1. ``If`` nodes are first replaced by
the branch these inputs take (their condition read from a run), so their compute is counted as it runs.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from edgecraft.backend import ExecutedCompute


def batch_one(feeds: Mapping[str, np.ndarray], input_shapes: Mapping[str, tuple[int, ...]] | None
              ) -> dict[str, np.ndarray]:
    """The timed feeds cut to the inputs' batch-1 shapes (the first sample, on whichever axis is the batch)."""
    out: dict[str, np.ndarray] = {}
    for name, value in feeds.items():
        array = np.asarray(value)
        wanted = (input_shapes or {}).get(name)
        if wanted is not None and array.ndim and len(wanted) == array.ndim:
            array = array[tuple(slice(0, w) if a > w else slice(None)
                                for a, w in zip(array.shape, wanted, strict=True))]
        out[name] = array
    return out


def _session(model: Any, level: Any = None, threads: int = 1, dump: Path | None = None) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL if level is None else level
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    if dump is not None:
        so.optimized_model_filepath = str(dump)
    return ort.InferenceSession(model.SerializeToString() if not isinstance(model, str) else model, so,
                                providers=["CPUExecutionProvider"])


def _expose(model: Any, names: list[str]) -> Any:
    """A copy of ``model`` whose outputs also include ``names`` (types left open: ONNX Runtime fills them)."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    have = {o.name for o in copy.graph.output} | {i.name for i in copy.graph.initializer}
    for name in dict.fromkeys(names):
        if name and name not in have:
            copy.graph.output.append(onnx.ValueInfoProto(name=name))
    return copy


def _inline_ifs(model: Any, feeds: Mapping[str, np.ndarray], notes: list[str]) -> Any:
    """Replace each ``If`` by the branch ``feeds`` take (outer-scope names are global in a valid graph), until
    none is left in the main graph (nested ones surface as their parents are inlined)."""
    import onnx

    for _ in range(32):  # nesting depth guard
        ifs = [n for n in model.graph.node if n.op_type == "If"]
        if not ifs:
            return model
        probe = _expose(model, [n.input[0] for n in ifs])
        names = [o.name for o in probe.graph.output]
        values = dict(zip(names, _session(probe).run(names, dict(feeds)), strict=True))
        nodes: list[Any] = []
        for node in model.graph.node:
            if node.op_type != "If":
                nodes.append(node)
                continue
            taken = "then_branch" if bool(np.asarray(values[node.input[0]]).reshape(-1)[0]) else "else_branch"
            body = next(a.g for a in node.attribute if a.name == taken)
            notes.append(f"If {node.name or node.output[0]}: counted the branch these inputs take ({taken})")
            model.graph.initializer.extend(body.initializer)
            nodes.extend(body.node)
            for inner, outer in zip(body.output, node.output, strict=True):
                nodes.append(onnx.helper.make_node("Identity", [inner.name], [outer]))
        del model.graph.node[:]
        model.graph.node.extend(nodes)
    raise ValueError("If nesting deeper than 32 levels")


def measured_shapes(model: Any, feeds: Mapping[str, np.ndarray], names: list[str]) -> dict[str, tuple[int, ...]]:
    """Shapes of ``names`` when ``model`` runs on ``feeds`` (no further optimization: the graph as given)."""
    probe = _expose(model, names)
    wanted = [o.name for o in probe.graph.output]
    results = _session(probe).run(wanted, dict(feeds))
    return {name: tuple(int(d) for d in np.shape(r)) for name, r in zip(wanted, results, strict=True)}


def executed_compute(model_path: Path, level: Any, level_name: str, threads: int,
                     input_shapes: Mapping[str, tuple[int, ...]] | None,
                     feeds: Mapping[str, np.ndarray]) -> ExecutedCompute:
    """Count what ONNX Runtime runs for ``model_path`` at optimization ``level`` (batch 1)."""
    import onnx
    import onnxruntime as ort
    from edgecraft.verify.compute import COUNTED_OPS, count_graph, fix_inputs

    with tempfile.TemporaryDirectory(prefix="edgecraft-ortexec-") as tmp:
        dumped = Path(tmp) / "executed.onnx"
        _session(str(model_path), level, threads, dump=dumped)  # the artifact as the measured session loads it
        executed = onnx.load(str(dumped))
    feeds1 = batch_one(feeds, input_shapes)
    notes: list[str] = []
    executed = _inline_ifs(executed, feeds1, notes)
    io = [name for node in executed.graph.node if node.op_type in COUNTED_OPS for name in [*node.input, *node.output]]
    fix_inputs(executed, {name: tuple(np.shape(v)) for name, v in feeds1.items()})
    count = count_graph(executed, None, executed=True, known_shapes=measured_shapes(executed, feeds1, io))
    return ExecutedCompute(
        source=f"onnxruntime {ort.__version__} optimized graph at level {level_name!r} (the measured session's)",
        macs=count.macs, int8_macs=count.int8_macs, by_op=count.by_op, uncounted=count.uncounted,
        notes=notes + count.notes)
