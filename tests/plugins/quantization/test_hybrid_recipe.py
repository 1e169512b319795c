"""Issue 26 item 5: a CNN backbone with an attention neck gets each part its recipe in one quantization.

The graphs are built here (a small conv stem written the way Paddle exports PPLCNetV3: Conv → ×s → +b →
hard-swish → ×s → +b, then a self-attention block); the real PP-OCRv4 recognizer runs in the slow test.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper, numpy_helper

RNG = np.random.default_rng(0)


def _c(name: str, value: Any) -> Any:
    return numpy_helper.from_array(np.asarray(value, np.float32), name)


def _stem(nodes: list[Any], inits: list[Any], x: str, i: int, cin: int, cout: int, k: int) -> str:
    """Conv → Mul(s, ·) (constant first, as Paddle writes it) → Add(b) → hard-swish → Mul → Add."""
    p = f"s{i}_"
    inits += [_c(p + "w", RNG.normal(0, 0.3, (cout, cin, k, k))), _c(p + "b", RNG.normal(0, 0.1, cout)),
              _c(p + "s1", [1.7]), _c(p + "b1", [0.2]), _c(p + "three", [3.0]), _c(p + "zero", 0.0),
              _c(p + "six", 6.0), _c(p + "six1", [6.0]), _c(p + "s2", [0.9]), _c(p + "b2", [-0.05])]
    pad = k // 2
    nodes += [helper.make_node("Conv", [x, p + "w", p + "b"], [p + "conv"], pads=[pad] * 4, name=p + "conv"),
              helper.make_node("Mul", [p + "s1", p + "conv"], [p + "m1"]),
              helper.make_node("Add", [p + "m1", p + "b1"], [p + "a1"]),
              helper.make_node("Add", [p + "a1", p + "three"], [p + "a3"]),
              helper.make_node("Clip", [p + "a3", p + "zero", p + "six"], [p + "clip"]),
              helper.make_node("Mul", [p + "a1", p + "clip"], [p + "hs"]),
              helper.make_node("Div", [p + "hs", p + "six1"], [p + "hsw"]),
              helper.make_node("Mul", [p + "s2", p + "hsw"], [p + "m2"]),
              helper.make_node("Add", [p + "m2", p + "b2"], [p + "out"])]
    return p + "out"


def hybrid_model(path: Path, *, attention: bool = True) -> Path:
    """[1, 3, 8, 32] → 4 conv stages (1x1 ones fold the next affine too) → tokens [1, 32, 16] → attention."""
    nodes: list[Any] = []
    inits: list[Any] = []
    x = _stem(nodes, inits, "x", 0, 3, 16, 3)
    x = _stem(nodes, inits, x, 1, 16, 16, 1)
    x = _stem(nodes, inits, x, 2, 16, 16, 3)
    x = _stem(nodes, inits, x, 3, 16, 16, 1)
    inits += [numpy_helper.from_array(np.array([1, 16, 256], np.int64), "shape3"),
              _c("wq", RNG.normal(0, 0.2, (16, 16))), _c("wk", RNG.normal(0, 0.2, (16, 16))),
              _c("wv", RNG.normal(0, 0.2, (16, 16))), _c("wo", RNG.normal(0, 0.2, (16, 16))), _c("scale", [0.25])]
    nodes += [helper.make_node("Reshape", [x, "shape3"], ["flat"]),
              helper.make_node("Transpose", ["flat"], ["tokens"], perm=[0, 2, 1])]
    if attention:
        nodes += [helper.make_node("MatMul", ["tokens", "wq"], ["q"]),
                  helper.make_node("MatMul", ["tokens", "wk"], ["k"]),
                  helper.make_node("MatMul", ["tokens", "wv"], ["v"]),
                  helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
                  helper.make_node("MatMul", ["q", "kt"], ["qk"]), helper.make_node("Mul", ["qk", "scale"], ["qks"]),
                  helper.make_node("Softmax", ["qks"], ["attn"], axis=-1),
                  helper.make_node("MatMul", ["attn", "v"], ["ctx"]),
                  helper.make_node("MatMul", ["ctx", "wo"], ["proj"]),
                  helper.make_node("Add", ["proj", "tokens"], ["y"])]
    else:
        nodes += [helper.make_node("MatMul", ["tokens", "wo"], ["y"])]
    graph = helper.make_graph(nodes, "hybrid", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 256, 16])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_a_conv_backbone_with_attention_is_hybrid_and_a_single_conv_stem_is_not(tmp_path: Path) -> None:
    from edgecraft.plugins.quantization.recipes import detect_onnx

    found = detect_onnx(hybrid_model(tmp_path / "h.onnx"))
    assert found.recipe == "hybrid" and "4 Convs" in found.reason
    assert detect_onnx(hybrid_model(tmp_path / "c.onnx", attention=False)).recipe == "cnn"
    # A ViT-like graph: one patch-embedding conv before the attention stays 'transformer'.
    model = onnx.load(str(tmp_path / "h.onnx"))
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    for conv in convs[1:]:
        conv.op_type = "Identity"
        del conv.input[1:]
        del conv.attribute[:]
    onnx.save(model, str(tmp_path / "vit.onnx"))
    assert detect_onnx(tmp_path / "vit.onnx").recipe == "transformer"


def test_affine_and_hardswish_folds_are_exact(tmp_path: Path) -> None:
    import onnxruntime as ort
    from edgecraft.backends.onnxruntime.graph_folding import simplify

    src = hybrid_model(tmp_path / "h.onnx")
    dst, counts = simplify(src, tmp_path / "folded.onnx")
    # 4 Conv → ×s → +b folds, and the 1x1 convs fold the affine before them too (2): 6; 4 hard-swishes.
    assert counts == {"affines_folded_into_conv": 6, "hardswish_rewritten": 4}
    ops = [n.op_type for n in onnx.load(str(dst)).graph.node]
    assert ops.count("HardSigmoid") == 4 and "Clip" not in ops and "Div" not in ops
    x = {"x": np.random.default_rng(1).normal(size=(1, 3, 8, 32)).astype(np.float32)}
    want = ort.InferenceSession(str(src)).run(None, x)[0]
    got = ort.InferenceSession(str(dst)).run(None, x)[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * float(np.abs(want).max()))  # float32 rounding


def _run(tmp: Path, params: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
    from edgecraft.cli import main

    rng = np.random.default_rng(2)
    np.savez(tmp / "calib.npz", x=rng.normal(size=(16, 3, 8, 32)).astype(np.float32))
    np.savez(tmp / "eval.npz", x=rng.normal(size=(8, 3, 8, 32)).astype(np.float32))
    plan = {"name": "hybrid", "model": {"kind": "onnx", "path": str(hybrid_model(tmp / "h.onnx"))},
            "data": {"calib": {"kind": "npz", "path": "calib.npz", "labels": None},
                     "eval": {"kind": "npz", "path": "eval.npz", "labels": None}},
            "evaluation": {"dataset": "eval", "metrics": ["cosine"]},
            "steps": [{"strategy": "quantization", "params": {"calibration_dataset": "calib",
                                                               "calibration_samples": 16, **params}}],
            "latency": {"warmup": 1, "repeats": 10, "rounds": 2, "threads": 1}, "targets": ["ort-cpu"],
            "contracts": [{"kind": "size", "min_ratio": 0.5}]}
    (tmp / "plan.yaml").write_text(yaml.safe_dump(plan))
    report = tmp / "report.json"
    code = main(["run", str(tmp / "plan.yaml"), "--report-json", str(report), "--cache-dir", str(tmp / "cache"), "-q"])
    return code, json.loads(report.read_text()) if report.exists() else None


def test_hybrid_quantizes_convs_statically_and_matmuls_dynamically(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, report = _run(tmp_path, {})
    assert code == 0, capsys.readouterr().err
    assert report is not None
    target = report["targets"][0]
    (step,) = target["compressed"]["steps"]
    assert step["recipe"] == "hybrid" and step["float_folds"]["hardswish_rewritten"] == 4
    assert step["recipe_parts"]["convolutional"].startswith("static QDQ")
    ran = target["compressed"]["compute"]["executed"]["by_op"]
    assert any(op in ran for op in ("QLinearConv",)), ran  # the Convs run on integer kernels ...
    integer_matmuls = ("DynamicQuantizeMatMul", "MatMulInteger", "MatMulIntegerToFloat")
    assert any(op in ran for op in integer_matmuls), ran  # ... and the weight MatMuls
    assert target["compressed"]["metrics"]["cosine"] > 0.98


def test_hybrid_refuses_dynamic_mode_and_smoothquant(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = _run(tmp_path, {"recipe": "hybrid", "mode": "dynamic"})
    assert code == 2 and "recipe 'hybrid'" in capsys.readouterr().err
    code, _ = _run(tmp_path, {"recipe": "hybrid", "smooth_alpha": 0.5})
    assert code == 2 and "smooth_alpha applies to the transformer recipe only" in capsys.readouterr().err


def _recognizer() -> Path:
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("rapidocr_onnxruntime is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "models" / "ch_PP-OCRv4_rec_infer.onnx"


def text_lines(n: int, seed: int) -> np.ndarray:
    """Rendered text lines for the recognizer: the ones ``benchmarks/int8_execution.py`` measures it on."""
    import sys

    benchmarks = str(Path(__file__).resolve().parents[3] / "benchmarks")
    sys.path.insert(0, benchmarks)
    try:
        import int8_execution
    finally:
        sys.path.remove(benchmarks)  # benchmarks/transformers.py must not shadow the transformers package
    lines: np.ndarray = int8_execution.text_lines(n, seed)
    return lines


@pytest.mark.slow
@pytest.mark.realmodels
def test_pp_ocrv4_recognizer_gets_the_hybrid_recipe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """PP-OCRv4's recognizer (PPLCNetV3 backbone + SVTR neck): the transformer recipe left its 38 Convs float
    (1.05x); the hybrid recipe runs them on integer kernels. Speed is measured by benchmarks, not asserted here."""
    from edgecraft.cli import main

    np.savez(tmp_path / "calib.npz", x=text_lines(16, 0))
    np.savez(tmp_path / "eval.npz", x=text_lines(16, 1))
    plan = {"name": "rec", "model": {"kind": "onnx", "path": str(_recognizer()),
                                     "inputs": {"x": {"shape": ["batch", 3, 48, 320]}}},
            "data": {"calib": {"kind": "npz", "path": "calib.npz", "labels": None},
                     "eval": {"kind": "npz", "path": "eval.npz", "labels": None}},
            "evaluation": {"dataset": "eval", "metrics": ["cosine", "agreement"], "batch_size": 1},
            "steps": [{"strategy": "quantization", "params": {"calibration_dataset": "calib", "calibration_samples": 16,
                                                               "accuracy_aware": {"enabled": "off"}}}],
            "latency": {"warmup": 2, "repeats": 10, "rounds": 2, "threads": 1}, "targets": ["ort-cpu"],
            "contracts": [{"kind": "accuracy", "metric": "cosine", "max_drop": 0.1}]}
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan))
    report_path = tmp_path / "report.json"
    code = main(["run", str(tmp_path / "plan.yaml"), "--report-json", str(report_path), "--cache-dir",
                 str(tmp_path / "cache"), "-q"])
    assert code == 0, capsys.readouterr().err
    target = json.loads(report_path.read_text())["targets"][0]
    (step,) = target["compressed"]["steps"]
    assert step["recipe"] == "hybrid", step["recipe_reason"]
    compute = target["compressed"]["compute"]
    assert compute["int8_fraction"] > 0.8, compute  # what ONNX Runtime runs: the Convs on QLinearConv
    assert compute["executed"]["by_op"].get("QLinearConv", 0) > 0
