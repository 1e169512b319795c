"""Write the plan's fixed dimensions into the ONNX graph a backend imports.

Exported models keep symbolic axes (``[batch, 3, height, width]``) even when the plan fixes them
(``model.inputs.x.shape: [batch, 3, 320, 320]``). A runtime that compiles for the shapes it is given (OpenVINO's
CPU plugin) then builds generic dynamic-shape kernels: measured on PP-OCRv4's text detector at 320x320, fp32
ran 8.3 ms with the dimensions fixed against 10.4 ms with them symbolic (issue 26). ONNX Runtime gained nothing
measurable from it (det 1.00-1.04x, rec 0.94-1.09x across runs with free-dimension overrides or fixed inputs),
so a target asks for it with ``TargetInfo.import_plan_shapes``.

Only the graph's input declarations change, to dimensions the plan already guarantees every feed has; an axis
the plan leaves symbolic (the batch axis) stays symbolic, so the artifact accepts what the plan says it accepts.
"""

from __future__ import annotations

from pathlib import Path

from edgecraft.models import OnnxModel


def with_plan_shapes(model: OnnxModel, work: Path) -> OnnxModel:
    """``model`` with every dimension the plan fixes written into its graph inputs (a new file under ``work``),
    or ``model`` itself when the file already declares them or keeps its weights in external data files."""
    import onnx

    proto = onnx.load(str(model.path), load_external_data=False)
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
        return model  # a copy elsewhere would lose its weight files; the backend gets the graph as it is
    wanted = {spec.name: spec.shape for spec in model.io.inputs}
    changed = False
    for value_info in proto.graph.input:
        shape = wanted.get(value_info.name)
        if shape is None or not value_info.type.HasField("tensor_type"):
            continue
        dims = value_info.type.tensor_type.shape.dim
        if len(dims) != len(shape):
            continue
        for dim, want in zip(dims, shape, strict=True):
            if isinstance(want, int) and not (dim.HasField("dim_value") and dim.dim_value == want):
                dim.Clear()
                dim.dim_value = want
                changed = True
    if not changed:
        return model
    out = work / f"{model.path.stem}.plan-shapes.onnx"
    n = 1
    while out.exists():
        n += 1
        out = work / f"{model.path.stem}.plan-shapes-{n}.onnx"
    onnx.save(proto, str(out))
    return OnnxModel(out, model.io, list(model.lineage))
