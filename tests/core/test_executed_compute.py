"""Issue 26 item 2: the report's int8 share and MACs describe what the runtime executes.

A QDQ graph runs on integer kernels in ONNX Runtime only at the extended level and above (at 'basic' the same
file runs DequantizeLinear + float Conv); OpenVINO folds the same QDQ into int8 layers of its runtime model; MACs
are counted through batched MatMuls and ``If`` bodies.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from edgecraft.registry import build_registry
from edgecraft.verify.compute import count_graph
from edgecraft.verify.executed import with_executed
from edgecraft.verify.report import ComputeReport
from onnx import TensorProto, helper, numpy_helper


def _conv_net(path: Path) -> Path:
    """Two 3x3 convs and a Gemm, fp32, random weights (integer kernels are what is checked, not accuracy)."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 0.2, s).astype(np.float32), n) for n, s in
             (("w1", (16, 3, 3, 3)), ("w2", (32, 16, 3, 3)), ("wf", (32 * 16 * 16, 10)))]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("Flatten", ["r2"], ["f"]), helper.make_node("Gemm", ["f", "wf"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    import onnx

    onnx.save(model, str(path))
    return path


def _qdq(fp32: Path, out: Path) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(1)
            self.items = iter([{"x": rng.normal(size=(1, 3, 16, 16)).astype(np.float32)} for _ in range(4)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    quantize_static(str(fp32), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return out


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("executed")
    fp32 = _conv_net(tmp / "fp32.onnx")
    return {"fp32": fp32, "qdq": _qdq(fp32, tmp / "qdq.onnx")}


def _artifact(path: Path, target: str, options: dict[str, Any], tmp: Path) -> tuple[Any, Any, Path]:
    backend, info = build_registry().target(target)
    opts = info.options_model.model_validate(options)
    work, out = tmp / f"work-{target}-{len(list(tmp.iterdir()))}", tmp / f"out-{target}-{len(list(tmp.iterdir()))}"
    work.mkdir()
    out.mkdir()
    backend.save(backend.import_onnx(path, target, opts, work), target, opts, out)
    return backend, opts, out


FEEDS = {"x": np.random.default_rng(2).normal(size=(4, 3, 16, 16)).astype(np.float32)}
SHAPES = {"x": (1, 3, 16, 16)}
MACS = 16 * 16 * 16 * 27 + 32 * 16 * 16 * 144 + 8192 * 10


@pytest.mark.parametrize(("saved", "runtime", "int8"), [("disable", "basic", False), ("basic", "basic", False),
                                                        ("disable", "extended", True), ("extended", "all", True)])
def test_ort_int8_share_is_the_optimized_graph_s(graphs: dict[str, Path], tmp_path: Path, saved: str, runtime: str,
                                                 int8: bool) -> None:
    backend, opts, out = _artifact(graphs["qdq"], "ort-cpu", {"saved_optimization": saved,
                                                              "runtime_optimization": runtime}, tmp_path)
    ran = backend.executed_compute(out, "ort-cpu", opts, 1, FEEDS, SHAPES)
    assert ran is not None and f"level {runtime!r}" in ran.source
    assert ran.macs >= MACS and not ran.uncounted, ran  # the NCHWc layout at 'all' pads channels: >= the math
    if int8:
        assert ran.int8_fraction > 0.95, ran.by_op
    else:  # the file's QDQ runs as DequantizeLinear + float kernels
        assert ran.int8_fraction < 0.05, ran.by_op
    # The lineage graph (the QDQ file) claims 100% either way: the report's headline is the executed share.
    lineage = count_graph(__import__("onnx").load(str(graphs["qdq"])), SHAPES)
    assert lineage.int8_fraction > 0.95
    joined = with_executed(ComputeReport(**lineage.as_dict()), ran, None)
    assert joined is not None and joined.int8_fraction == pytest.approx(ran.int8_fraction)
    assert joined.lineage_int8_fraction == pytest.approx(lineage.int8_fraction) and joined.macs == lineage.macs


def test_ort_fp32_has_no_int8_and_aarch64_is_not_read_here(graphs: dict[str, Path], tmp_path: Path) -> None:
    backend, opts, out = _artifact(graphs["fp32"], "ort-cpu", {}, tmp_path)
    ran = backend.executed_compute(out, "ort-cpu", opts, 1, FEEDS, SHAPES)
    assert ran is not None and ran.int8_macs == 0 and ran.macs >= MACS


def test_unreadable_executed_graph_keeps_the_lineage_and_says_why() -> None:
    report = ComputeReport(params=1, weight_bytes=4, macs=100, int8_macs=100, int8_fraction=1.0)
    kept = with_executed(report, None, "the executed graph could not be read (Fail: boom)")
    assert kept is not None and kept.int8_fraction == 1.0 and kept.int8_source == "lineage ONNX graph"
    assert any("could not be read" in n for n in kept.notes)


@pytest.mark.openvino
@pytest.mark.slow  # two OpenVINO conversions and compilations
def test_openvino_int8_share_comes_from_its_runtime_model(graphs: dict[str, Path], tmp_path: Path) -> None:
    """OpenVINO turns the QDQ file into FakeQuantize and runs those layers in u8/i8: the share is > 0 there
    (the lineage count of an NNCF artifact used to say 0%), and 0 for the fp32 IR."""
    shares = {}
    for name, path in graphs.items():
        backend, opts, out = _artifact(path, "openvino-cpu", {"inference_precision": "f32"}, tmp_path)
        ran = backend.executed_compute(out, "openvino-cpu", opts, 1, FEEDS, SHAPES)
        assert ran.macs > 0 and "runtime model" in ran.source, ran
        shares[name] = ran.int8_fraction
    assert shares["fp32"] == 0.0 and shares["qdq"] > 0.5, shares


# ------------------------------------------------------------------------------------------ MAC counting
def test_batched_broadcast_matmul_and_if_branches_are_counted() -> None:
    """[2, 4, 8, 16] x [16, 32] (broadcast weight) and [2, 4, 8, 16] x [2, 4, 16, 8] (attention scores), one in
    each branch of an If: the larger branch is added and the notes say so."""
    def branch(name: str, node: Any, out: str) -> Any:
        return helper.make_graph([node], name, [], [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)])

    weight = numpy_helper.from_array(np.ones((16, 32), np.float32), "w")
    then_ = branch("then", helper.make_node("MatMul", ["a", "w"], ["t"]), "t")
    else_ = branch("else", helper.make_node("MatMul", ["a", "b"], ["e"]), "e")
    graph = helper.make_graph(
        [helper.make_node("If", ["c"], ["y"], then_branch=then_, else_branch=else_)], "g",
        [helper.make_tensor_value_info("c", TensorProto.BOOL, []),
         helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 4, 8, 16]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, [2, 4, 16, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    count = count_graph(model)
    assert count.macs == 2 * 4 * 8 * 32 * 16  # then branch: 8192 MACs > else: 2*4*8*8*16 = 4096
    assert any("larger branch (then_branch)" in n for n in count.notes)


def _package_file(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"{package} is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / relative


@pytest.mark.realmodels
@pytest.mark.slow
def test_vad_macs_are_counted_in_the_branch_it_takes(tmp_path: Path) -> None:
    """Silero VAD is one If (16 kHz / 8 kHz) around nested Ifs: all of its compute is in subgraphs."""
    vad = _package_file("silero_vad", "data/silero_vad.onnx")
    out = tmp_path / "art"
    out.mkdir()
    backend, info = build_registry().target("ort-cpu")
    opts = info.options_model.model_validate({})
    backend.save(backend.import_onnx(vad, "ort-cpu", opts, tmp_path), "ort-cpu", opts, out)
    feeds = {"input": np.zeros((2, 512), np.float32), "state": np.zeros((2, 2, 128), np.float32),
             "sr": np.array(16000, np.int64)}
    ran = backend.executed_compute(out, "ort-cpu", opts, 1, feeds, {"input": (1, 512), "state": (2, 1, 128), "sr": ()})
    assert ran is not None and ran.macs > 400_000 and not ran.uncounted, ran
    assert "LSTM" in ran.by_op and any("then_branch" in n for n in ran.notes)


@pytest.mark.slow  # four small plans through the runner
def test_benchmark_smoke(tmp_path: Path) -> None:
    import json
    import sys

    root = Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(root / "benchmarks"))
    try:
        import int8_execution as bench
    finally:
        sys.path.remove(str(root / "benchmarks"))
    assert bench.main(["--smoke", "--json", str(tmp_path / "out.json")]) == 0
    figures = json.loads((tmp_path / "out.json").read_text())
    assert figures["smoke"] is True and figures["reported_share_follows_the_level"] is True and "cpu" in figures
    assert all(v == 1.0 for v in figures["ort_int8_share_lineage"].values())  # what the old report said
