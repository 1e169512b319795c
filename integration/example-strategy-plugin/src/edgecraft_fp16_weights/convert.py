"""Weight-only float16 storage of an ONNX graph.

Hand-written on purpose: onnxconverter-common's ``convert_float_to_float16`` converts the whole
computation to float16 (which ONNX Runtime's CPU provider then wraps in casts, op by op), while this
keeps every op in float32 and only changes how the weights are stored: each large float32
initializer ``W`` becomes a float16 initializer ``W__fp16`` plus one ``Cast(to=FLOAT)`` node whose
output is named ``W``, so every consumer is untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FP16_MAX = float(np.finfo(np.float16).max)


@dataclass
class ConversionReport:
    converted: list[str] = field(default_factory=list)
    kept_small: int = 0
    kept_overflow: list[str] = field(default_factory=list)
    kept_by_request: list[str] = field(default_factory=list)
    bytes_before: int = 0
    bytes_after: int = 0
    max_abs_error: float = 0.0


def convert_weights_to_fp16(src: Path, dst: Path, *, min_elements: int = 16,
                            keep: frozenset[str] = frozenset()) -> ConversionReport:
    """Write ``dst``: ``src`` with its float32 initializers stored as float16 (+ Cast nodes)."""
    model = onnx.load(str(src))
    graph = model.graph
    report = ConversionReport()
    graph_inputs = {i.name for i in graph.input}
    casts: list[onnx.NodeProto] = []
    new_inits: list[onnx.TensorProto] = []
    for init in graph.initializer:
        array = numpy_helper.to_array(init)
        report.bytes_before += array.nbytes
        if init.data_type != TensorProto.FLOAT or init.name in graph_inputs:
            new_inits.append(init)
            report.bytes_after += array.nbytes
            continue
        if init.name in keep:
            report.kept_by_request.append(init.name)
        elif array.size < min_elements:
            report.kept_small += 1
        elif np.abs(array).max(initial=0.0) > FP16_MAX:
            report.kept_overflow.append(init.name)
        else:
            half = array.astype(np.float16)
            report.max_abs_error = max(report.max_abs_error,
                                       float(np.abs(half.astype(np.float32) - array).max(initial=0.0)))
            new_inits.append(numpy_helper.from_array(half, f"{init.name}__fp16"))
            casts.append(helper.make_node("Cast", [f"{init.name}__fp16"], [init.name], to=TensorProto.FLOAT,
                                          name=f"{init.name}__fp16_cast"))
            report.converted.append(init.name)
            report.bytes_after += half.nbytes
            continue
        new_inits.append(init)
        report.bytes_after += array.nbytes
    del graph.initializer[:]
    graph.initializer.extend(new_inits)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)  # casts first: the graph stays topologically sorted
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return report
