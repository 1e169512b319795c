"""The transformer recipe: detection (graph, source), compile-time resolution, what stays float, errors.

Graph-level detection runs on hand-built ONNX graphs (milliseconds); plans use tiny BERT folders built
from a config (tests/plugins/sources/hf_tiny.py: random weights, offline). Runs through ``run_plan`` are slow.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import yaml
from edgecraft.backends.onnxruntime import quantize_recipes as smoothquant
from edgecraft.errors import EXIT_BAD_INPUT
from edgecraft.plan import RawPlan
from edgecraft.plugins.quantization import recipes
from edgecraft.registry import build_registry
from edgecraft.runner import compile_all, prepare, run_plan
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "sources"))
from hf_tiny import SENTENCES, TinyModels, build_tiny_models  # noqa: E402

QUANT_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger",
             "QLinearMatMul", "DynamicQuantizeMatMul", "MatMulIntegerToFloat"}


@pytest.fixture(scope="module")
def registry() -> Any:
    return build_registry()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    return build_tiny_models(tmp_path_factory.mktemp("tiny-hf-q"))


@pytest.fixture
def workdir(tmp_path: Path, tiny: TinyModels) -> Path:
    """A plan folder: the sentence-transformers tiny BERT and calibration / held-out sentence files."""
    import shutil

    shutil.copytree(tiny.sentence, tmp_path / "model")
    words = " ".join(SENTENCES).split()
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(words, size=int(rng.integers(4, 14)))) for _ in range(48)]
    (tmp_path / "calib.txt").write_text("\n".join(SENTENCES + lines[:24]) + "\n")
    (tmp_path / "held.txt").write_text("\n".join(lines[24:]) + "\n")
    return tmp_path


# ---------------------------------------------------------------- detection on hand-built graphs
def _w(name: str, *shape: int) -> Any:
    return numpy_helper.from_array(np.random.default_rng(0).standard_normal(shape).astype(np.float32), name)


def attention_graph() -> onnx.ModelProto:
    """x -> LayerNorm -> Q, K, V (weight MatMuls) -> softmax(Q·Kᵀ / 2 + mask) · V -> out proj -> + x."""
    nodes = [
        helper.make_node("LayerNormalization", ["x", "g", "b"], ["h"], name="ln"),
        helper.make_node("MatMul", ["h", "wq"], ["q"], name="q_proj"),
        helper.make_node("MatMul", ["h", "wk"], ["k"], name="k_proj"),
        helper.make_node("MatMul", ["h", "wv"], ["v"], name="v_proj"),
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1], name="kt"),
        helper.make_node("MatMul", ["q", "kt"], ["s"], name="qk"),
        helper.make_node("Div", ["s", "two"], ["s2"], name="scale"),
        helper.make_node("Add", ["s2", "mask"], ["s3"], name="mask_add"),
        helper.make_node("Softmax", ["s3"], ["p"], axis=-1, name="softmax"),
        helper.make_node("MatMul", ["p", "v"], ["c"], name="pv"),
        helper.make_node("MatMul", ["c", "wo"], ["o"], name="o_proj"),
        helper.make_node("Add", ["o", "x"], ["y"], name="residual"),
    ]
    graph = helper.make_graph(
        nodes, "attention",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8]),
         helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8])],
        [_w("g", 8), _w("b", 8), _w("wq", 8, 8), _w("wk", 8, 8), _w("wv", 8, 8), _w("wo", 8, 8),
         numpy_helper.from_array(np.array(2.0, np.float32), "two")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def cnn_graph() -> onnx.ModelProto:
    """Conv -> Relu -> flatten -> Gemm -> Softmax: a classifier's Softmax is fed by a *weight* op."""
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["f"], name="flatten"),
        helper.make_node("MatMul", ["f", "fc"], ["l"], name="fc"),
        helper.make_node("Softmax", ["l"], ["y"], name="softmax"),
    ]
    graph = helper.make_graph(
        nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        [_w("w", 2, 1, 3, 3), _w("fc", 32, 3)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_attention_graph_is_a_transformer() -> None:
    found = recipes.detect_onnx_graph(attention_graph().graph)
    assert found.recipe == "transformer"
    assert "Softmax" in found.reason and "qk" in found.reason


def test_cnn_graph_is_not_a_transformer() -> None:
    found = recipes.detect_onnx_graph(cnn_graph().graph)
    assert found.recipe == "cnn"


def test_fused_attention_op_is_a_transformer() -> None:
    graph = cnn_graph().graph
    graph.node.append(helper.make_node("Attention", ["y"], ["z"], domain="com.microsoft", name="att"))
    assert recipes.detect_onnx_graph(graph).recipe == "transformer"


@pytest.mark.openvino
def test_openvino_detection_matches_onnx(tmp_path: Path) -> None:
    import openvino as ov
    from edgecraft.backends.openvino.quantize_nncf import detect_openvino

    for proto, want in ((attention_graph(), "transformer"), (cnn_graph(), "cnn")):
        path = tmp_path / f"{want}.onnx"
        onnx.save(proto, str(path))
        assert detect_openvino(ov.Core().read_model(str(path))).recipe == want


def _smooth_check(proto: onnx.ModelProto, tmp_path: Path, extra: tuple[str, ...] | list[str] = ()) -> dict[str, Any]:
    """Smooth ``proto`` (alpha 0.7) and check the float rewrite is exact: (X / s) @ (s W) == X @ W."""
    import onnxruntime as ort

    src, dst = tmp_path / "a.onnx", tmp_path / "s.onnx"
    onnx.save(proto, str(src))
    rng = np.random.default_rng(1)
    feeds = [{"x": (rng.standard_normal((1, 4, 8)) * np.array([1] * 7 + [40])).astype(np.float32),
              "mask": np.zeros((1, 1, 4), np.float32)} for _ in range(4)]
    stats = smoothquant.collect_smooth_stats(src, feeds, 1, exclude=set())
    # o_proj's input is attention·V (bounded by V's range): not smoothed.
    assert sorted(n for names in stats.groups.values() for n in names) == sorted(["k_proj", "q_proj", "v_proj",
                                                                                  *extra])
    info = smoothquant.smooth_matmul_inputs(src, dst, stats, 0.7)
    a = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    for f in feeds:
        assert np.allclose(a.run(None, f)[0], b.run(None, f)[0], rtol=1e-4, atol=1e-3)
    return info


def test_smoothquant_folds_into_a_layernorm_feeding_only_matmuls(tmp_path: Path) -> None:
    """Pre-LN layout: the norm output feeds only Q, K, V, so 1/s goes into its scale and bias (no extra op)."""
    info = _smooth_check(attention_graph(), tmp_path)
    assert (info["matmul_inputs"], info["folded_into_layernorm"], info["muls_inserted"]) == (1, 1, 0)


def test_smoothquant_inserts_a_mul_when_the_norm_also_feeds_the_residual(tmp_path: Path) -> None:
    """Post-LN layout (BERT): the norm output is also the residual, which must stay unscaled."""
    proto = attention_graph()
    residual = next(n for n in proto.graph.node if n.name == "residual")
    residual.input[1] = "h"
    info = _smooth_check(proto, tmp_path)
    assert (info["folded_into_layernorm"], info["muls_inserted"]) == (0, 1)


def test_smoothquant_folds_into_a_gelu_constant(tmp_path: Path) -> None:
    """An exported GELU ends in x * (0.5 * (1 + erf(x/√2))): 1/s goes into a copy of the 0.5, no extra op."""
    proto = attention_graph()
    g = proto.graph
    # y = residual + (gelu(y0) @ w2), gelu built as the exporters write it, sharing the constant 0.5.
    residual = next(n for n in g.node if n.name == "residual")
    residual.output[0] = "y0"
    g.node.extend([
        helper.make_node("Div", ["y0", "sqrt2"], ["d"], name="gelu_div"),
        helper.make_node("Erf", ["d"], ["e"], name="gelu_erf"),
        helper.make_node("Add", ["e", "one"], ["e1"], name="gelu_add"),
        helper.make_node("Mul", ["half", "e1"], ["e2"], name="gelu_half"),
        helper.make_node("Mul", ["y0", "e2"], ["gelu"], name="gelu"),
        helper.make_node("Mul", ["y0", "half"], ["unused_half"], name="shares_the_constant"),
        helper.make_node("MatMul", ["gelu", "w2"], ["f"], name="ffn2"),
        helper.make_node("Add", ["f", "unused_half"], ["y"], name="out")])
    g.initializer.extend([numpy_helper.from_array(np.array(v, np.float32), n)
                          for n, v in (("sqrt2", 2 ** 0.5), ("one", 1.0), ("half", 0.5))])
    g.initializer.append(_w("w2", 8, 8))
    info = _smooth_check(proto, tmp_path, extra=["ffn2"])
    assert info["folded_into_mul"] == 1


# ---------------------------------------------------------------- compile time
def _hf_plan(workdir: Path, target: Any = "ort-cpu", params: dict[str, Any] | None = None, *,
             contract: bool = True) -> RawPlan:
    plan: dict[str, Any] = {
        "model": {"kind": "huggingface", "path": "model", "sequence_length": 16},
        "data": {"calib": {"kind": "text", "path": "calib.txt"}, "held": {"kind": "text", "path": "held.txt"}},
        "evaluation": {"dataset": "held", "metrics": ["cosine"], "output": "sentence_embedding"},
        "steps": [{"strategy": "quantization", "name": "int8",
                   "params": {"calibration_dataset": "calib", "calibration_samples": 24, **(params or {})}}],
        "targets": [target],
        "latency": {"warmup": 1, "repeats": 10, "rounds": 2, "threads": 1},
    }
    if contract:
        plan["contracts"] = [{"kind": "accuracy", "metric": "cosine", "max_drop": 0.05}]
    return RawPlan.model_validate(plan)


def _compile(registry: Any, plan: RawPlan, base: Path, target: str = "ort-cpu") -> Any:
    (step,) = compile_all(prepare(plan, registry, base), [target])[target].steps
    return step


@pytest.mark.huggingface
def test_hf_transformer_gets_the_transformer_recipe_on_ort(registry: Any, workdir: Path) -> None:
    step = _compile(registry, _hf_plan(workdir), workdir)
    assert step.params["recipe"] == "transformer" and step.params["mode"] == "dynamic"
    assert "SmoothQuant" in step.implementation and "weight MatMuls" in step.implementation
    assert any("Hugging Face transformer" in n for n in step.notes)
    assert any("Softmax, LayerNorm, residual Adds, the attention-mask path" in n for n in step.notes)


@pytest.mark.huggingface
@pytest.mark.openvino
def test_hf_transformer_gets_nncf_transformer_preset_on_openvino(registry: Any, workdir: Path) -> None:
    step = _compile(registry, _hf_plan(workdir, "openvino-cpu"), workdir, "openvino-cpu")
    assert step.params["recipe"] == "transformer" and step.params["mode"] == "static"
    assert "model_type TRANSFORMER" in step.implementation
    assert step.implementation.startswith("nncf.quantize_with_accuracy_control")


@pytest.mark.huggingface
def test_recipe_cnn_can_be_forced(registry: Any, workdir: Path) -> None:
    step = _compile(registry, _hf_plan(workdir, params={"recipe": "cnn"}), workdir)
    assert step.params["recipe"] == "cnn" and step.params["mode"] == "static"
    assert "QDQ static" in step.implementation


def test_cnn_torch_model_gets_the_cnn_recipe(registry: Any) -> None:
    plan = RawPlan.model_validate({
        "model": {"kind": "torch", "factory": "qmodels.py:untrained", "input_shape": [1, 1, 8, 8]},
        "steps": [{"strategy": "quantization", "name": "int8", "params": {"calibration_dataset": "calib"}}],
        "targets": ["ort-cpu"], "data": {"calib": {"kind": "digits", "split": "train", "image_size": 8,
                                                     "max_samples": 8}}})
    step = _compile(registry, plan, HERE)
    assert step.params["recipe"] == "cnn" and step.params["mode"] == "static"
    assert "QDQ static (per-channel" in step.implementation
    assert any("no attention module" in n for n in step.notes)


def test_onnx_file_is_detected_at_compile_time(registry: Any, tmp_path: Path) -> None:
    onnx.save(attention_graph(), str(tmp_path / "att.onnx"))
    plan = RawPlan.model_validate({
        "model": {"kind": "onnx", "path": "att.onnx"},
        "steps": [{"strategy": "quantization", "name": "int8", "params": {"mode": "dynamic"}}],
        "targets": ["ort-cpu"]})
    step = _compile(registry, plan, tmp_path)
    assert step.params["recipe"] == "transformer"
    assert any("Q·Kᵀ" in n for n in step.notes)


@pytest.mark.huggingface
@pytest.mark.parametrize(("params", "field"), [
    ({"recipe": "rnn"}, "recipe"),
    ({"smooth_alpha": 1.5}, "smooth_alpha"),
    ({"recipe": "cnn", "smooth_alpha": 0.5}, "smooth_alpha"),
    ({"mode": "weight_only"}, "weight_only"),
])
def test_bad_params_exit_2_naming_step_and_field(workdir: Path, params: dict[str, Any], field: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from edgecraft.cli import main

    plan = _hf_plan(workdir, params=params).model_dump(mode="json", by_alias=True, exclude_none=True)
    path = workdir / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    code = main(["compile", str(path), "-t", "ort-cpu"])
    text = capsys.readouterr()
    out = text.out + text.err
    assert code == EXIT_BAD_INPUT, out
    assert "steps[0]" in out and field in out, out


@pytest.mark.huggingface
@pytest.mark.openvino
def test_smooth_alpha_is_noted_and_ignored_on_openvino(registry: Any, workdir: Path) -> None:
    """One step serves every target: the ORT-only knob must not make an ort-cpu + openvino-cpu plan fail."""
    step = _compile(registry, _hf_plan(workdir, "openvino-cpu", {"smooth_alpha": 0.5}), workdir, "openvino-cpu")
    assert any("smooth_alpha is an ONNX Runtime option" in n for n in step.notes)


# ---------------------------------------------------------------- run time (slow)
def _run(registry: Any, plan: RawPlan, base: Path) -> Any:
    report = run_plan(plan, registry, base_dir=base, cache_dir=base / "cache")
    (target,) = report.targets
    (step,) = target.compressed.steps
    return target, step


def _forward_closure(graph: Any, start: str, stop_ops: set[str]) -> list[Any]:
    """Nodes reachable from tensor ``start``, not walking past ``stop_ops``."""
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    seen, out, stack = set(), [], [start]
    while stack:
        for node in consumers.get(stack.pop(), []):
            if id(node) in seen:
                continue
            seen.add(id(node))
            out.append(node)
            if node.op_type not in stop_ops:
                stack.extend(node.output)
    return out


@pytest.mark.slow
@pytest.mark.huggingface
def test_ort_transformer_int8_keeps_sensitive_ops_and_integer_inputs_float(registry: Any, workdir: Path) -> None:
    target, step = _run(registry, _hf_plan(workdir), workdir)
    assert step["recipe"] == "transformer" and "Hugging Face" in step["recipe_reason"]
    assert step["mode"] == "dynamic" and step["int8_weight_tensors"] >= 12  # 2 layers x 6 weight MatMuls
    choice = step["recipe_choice"]
    assert {c["name"] for c in choice["candidates"]} == {"no smoothing", "smoothquant 0.6", "smoothquant 0.75"}
    assert choice["chosen"] in {c["name"] for c in choice["candidates"]}
    assert step["smoothquant"]["applied"] == (choice["chosen"] != "no smoothing")

    # The int8 graph was quantized from the same TorchScript export, and its lineage is counted whole.
    assert target.compressed.export == target.baseline.export == {"exporter": "torchscript", "opset": 18,
                                                                    "attention": "eager"}
    compute = target.compressed.compute
    assert compute is not None and compute.uncounted == [] and compute.lineage_int8_fraction is not None
    assert compute.lineage_int8_fraction > 0.8  # the weight MatMuls; attention products stay float
    baseline = onnx.load(str(Path(target.baseline.artifact) / "model.onnx")).graph
    graph = onnx.load(str(Path(target.compressed.artifact) / "model.onnx")).graph
    producer = {o: n for n in graph.node for o in n.output}
    ops = [n.op_type for n in graph.node]
    # Integer inputs stay int64 and feed no quantizer.
    for inp in graph.input:
        assert inp.type.tensor_type.elem_type == TensorProto.INT64, inp.name
        assert not any(n.op_type in QUANT_OPS for n in graph.node if inp.name in n.input), inp.name
    # Softmax and LayerNorm still run in float: same count as the fp32 artifact, no quantized input. ONNX Runtime
    # may fuse a residual Add into a LayerNorm (SkipLayerNormalization) in one graph and not the other.
    base_ops = [n.op_type for n in baseline.node]
    for family in (("Softmax",), ("LayerNormalization", "SkipLayerNormalization")):
        assert sum(map(ops.count, family)) == sum(map(base_ops.count, family)) > 0, family
    # No activation takes a Q/DQ round trip: the only DequantizeLinear ops decode int8 embedding rows looked
    # up by a Gather (weights, for size), so Softmax, LayerNorm, the residual Adds and the mask stay float.
    inits = {t.name for t in graph.initializer}
    assert "QuantizeLinear" not in ops and not any(op.startswith("QLinear") for op in ops)
    for node in graph.node:
        if node.op_type == "DequantizeLinear":
            gather = producer.get(node.input[0])
            assert gather is not None and gather.op_type == "Gather" and gather.input[0] in inits, node.name
    # Activations are quantized only where a weight MatMul consumes them (dynamic int8).
    consumers: dict[str, list[str]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node.op_type)
    for node in graph.node:
        if node.op_type == "DynamicQuantizeLinear":
            assert set(consumers[node.output[0]]) <= {"MatMulInteger", "MatMulIntegerToFloat"}, node.name
    # The attention-mask path, up to the Softmax it feeds, holds no quantization op.
    path = _forward_closure(graph, "attention_mask", {"Softmax"})
    assert any(n.op_type == "Softmax" for n in path)
    mask_quant = [n.op_type for n in path if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert mask_quant == []
    # Q·Kᵀ and attention·V (activation x activation) stay float MatMuls.
    act_matmuls = [n for n in graph.node if n.op_type in ("MatMul", "FusedMatMul") and not set(n.input) & inits]
    assert len(act_matmuls) >= 4
    assert step["float_ops"]["Softmax"] == 2 and step["float_ops"]["LayerNormalization"] >= 4
    assert target.compressed.metrics["cosine"] > 0.9


@pytest.mark.slow
@pytest.mark.huggingface
def test_accuracy_aware_loop_runs_on_a_cosine_contract(registry: Any, workdir: Path) -> None:
    """An unreachable cosine bound makes the loop rank layers and return them to float within its budget."""
    plan = _hf_plan(workdir, params={"smooth_alpha": 0, "accuracy_aware": {"max_evaluations": 3}}, contract=False)
    plan = RawPlan.model_validate({**plan.model_dump(by_alias=True, exclude_none=True),
                                          "contracts": [{"kind": "accuracy", "metric": "cosine", "max_drop": 0.0}]})
    _, step = _run(registry, plan, workdir)
    loop = step["accuracy_aware"]
    assert loop["evaluations"] == 3 and len(loop["steps"]) == 3
    assert "cosine" in loop["steps"][0]["metrics"]
    assert loop["steps"][1]["returned_to_float"] and step["kept_float"]
    assert step["smoothquant"] == {"applied": False, "why": "smooth_alpha 0"}


@pytest.mark.slow
@pytest.mark.huggingface
@pytest.mark.openvino
def test_openvino_transformer_preset_and_accuracy_control_fallback(registry: Any, workdir: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from edgecraft.backends.openvino import quantize_nncf as ov_engine

    calls: list[dict[str, Any]] = []
    real_quantize = ov_engine.quantize

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real_quantize(*args, **kwargs)

    def crash(*_: Any, **__: Any) -> Any:
        raise RuntimeError("Check 'convert->constant_fold(...)' failed at constant_folding.cpp:71")

    monkeypatch.setattr(ov_engine, "quantize", spy)
    monkeypatch.setattr(ov_engine, "quantize_with_accuracy_control", crash)
    _, step = _run(registry, _hf_plan(workdir, "openvino-cpu"), workdir)
    assert step["recipe"] == "transformer" and "TRANSFORMER" in step["model_type"]
    assert calls and all(c["transformer"] is True for c in calls)
    fallback = step["accuracy_aware"]["fallback"]
    assert "constant_fold" in fallback and "model_type TRANSFORMER" in fallback
    assert step["openvino_ops"].get("FakeQuantize", 0) > 0
    assert json.dumps(step)  # the details serialize into the report
