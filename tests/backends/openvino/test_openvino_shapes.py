"""openvino-cpu builds baseline and candidate at the plan's shapes and compiles static shapes (issue 26, item 1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from edgecraft.cli import main

pytestmark = pytest.mark.openvino


def symbolic_conv(path: Path) -> Path:
    """A conv net whose input is [batch, 3, height, width], every axis symbolic (as exporters write them)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3, "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((4, 8, 3, 3)).astype(np.float32) * 0.3, "w2")
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["y"], pads=[1, 1, 1, 1])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4, "height", "width"])], [w1, w2])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def run(tmp: Path, plan: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
    (tmp / "plan.yaml").write_text(yaml.safe_dump(plan))
    report = tmp / "report.json"
    code = main(["run", str(tmp / "plan.yaml"), "--report-json", str(report), "--cache-dir", str(tmp / "cache"), "-q"])
    return code, json.loads(report.read_text()) if report.exists() else None


def ir_input_shape(artifact: str) -> str:
    import openvino as ov

    return str(ov.Core().read_model(str(Path(artifact) / "model.xml")).inputs[0].get_partial_shape())


@pytest.mark.parametrize(("shape", "expected"), [(["batch", 3, 16, 16], "[?,3,16,16]"),
                                                 ([1, 3, 16, 16], "[1,3,16,16]")])
def test_baseline_and_candidate_are_built_at_the_plans_shapes(tmp_path: Path, shape: list[Any], expected: str) -> None:
    symbolic_conv(tmp_path / "m.onnx")
    np.savez(tmp_path / "calib.npz", x=np.random.default_rng(1).standard_normal((8, 3, 16, 16)).astype(np.float32))
    plan = {"name": "shapes", "model": {"kind": "onnx", "path": "m.onnx", "inputs": {"x": {"shape": shape}}},
            "data": {"calib": {"kind": "npz", "path": "calib.npz", "labels": None}},
            "steps": [{"strategy": "quantization", "params": {"mode": "static", "calibration_dataset": "calib",
                                                              "calibration_samples": 8}}],
            "targets": ["openvino-cpu"], "latency": {"warmup": 1, "repeats": 5, "rounds": 1, "threads": 1},
            "contracts": [{"kind": "size", "min_ratio": 0.1}]}
    code, report = run(tmp_path, plan)
    assert code == 0 and report is not None
    target = report["targets"][0]
    # The plan fixed channels, height and width: the IR has them; the batch axis stays symbolic only if the plan
    # kept it symbolic.
    assert ir_input_shape(target["baseline"]["artifact"]) == expected
    assert ir_input_shape(target["compressed"]["artifact"]) == expected
    for side in ("baseline", "compressed"):  # both compiled static: like is compared with like
        shapes = target[side]["runtime"]["shapes"]
        assert shapes.startswith("static" if "?" in expected else "as declared"), shapes


def test_session_compiles_each_call_shape_and_matches_onnxruntime(tmp_path: Path) -> None:
    import onnxruntime as ort
    from edgecraft.backends.openvino.backend import TARGET, OpenVinoBackend, OpenVinoCpuOptions

    model = symbolic_conv(tmp_path / "m.onnx")
    backend = OpenVinoBackend()
    out = tmp_path / "ir"
    out.mkdir()
    backend.save(backend.import_onnx(model, TARGET, OpenVinoCpuOptions(), tmp_path), TARGET, OpenVinoCpuOptions(), out)
    reference = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    session = backend.load(out, TARGET, OpenVinoCpuOptions(), threads=1)
    rng = np.random.default_rng(0)
    for shape in [(1, 3, 16, 16), (3, 3, 16, 16), (1, 3, 8, 12), (1, 3, 16, 16)]:
        x = rng.standard_normal(shape).astype(np.float32)
        (got,) = session.run({"x": x})
        np.testing.assert_allclose(got, reference.run(None, {"x": x})[0], rtol=1e-4, atol=1e-4)
    described = session.describe()["shapes"]
    assert described.startswith("static") and "[3, 3, 16, 16]" in described and "[1, 3, 8, 12]" in described
    session.close()
    dynamic = backend.load(out, TARGET, OpenVinoCpuOptions(static_shapes=False), threads=1)
    dynamic.run({"x": np.zeros((2, 3, 16, 16), np.float32)})
    assert dynamic.describe()["shapes"].startswith("as declared")


def test_plan_shapes_written_into_the_graph_only_where_the_plan_fixes_them(tmp_path: Path) -> None:
    import onnx
    from edgecraft.assembly.plan_shapes import with_plan_shapes
    from edgecraft.modelio import ModelIO, TensorSpec
    from edgecraft.models import OnnxModel

    path = symbolic_conv(tmp_path / "m.onnx")
    io = ModelIO((TensorSpec("x", "float32", ("batch", 3, 16, 20), 0),))
    fixed = with_plan_shapes(OnnxModel(path, io), tmp_path)
    assert fixed.path != path and fixed.io == io
    dims = onnx.load(str(fixed.path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, 16, 20]
    again = with_plan_shapes(fixed, tmp_path)  # nothing left to fix: the same file
    assert again.path == fixed.path


def test_conversion_cause_keeps_openvinos_reason_not_its_source_locations() -> None:
    from edgecraft.backends.openvino.options import conversion_cause

    message = """Check 'false' failed at src/frontends/common_translators/src/unconverted_ops_report.cpp:151:
FrontEnd API failed with OpConversionFailure:
Model wasn't fully converted. Failed operations detailed log:
-- If-16 with a message:
[ONNX Frontend] Conversion failed for If-16
While validating ONNX node '<Node(If): If_0_outputs_0>': Check 'x' failed at transpose_shape_inference.hpp:70:
Input order must have shape [n], where n is the rank of arg.

Summary:
-- Conversion is failed for: If-16
"""
    cause = conversion_cause(RuntimeError(message))
    assert cause.startswith("Conversion is failed for: If-16")
    assert "If-16: " in cause and cause.endswith("Input order must have shape [n], where n is the rank of arg.")
    assert "unconverted_ops_report.cpp" not in cause
    assert conversion_cause(RuntimeError("Exception from a.cpp:1:\nCheck 'y' failed\nthe real reason")) == \
        "the real reason"
