"""QAT's int8 simulation and its export: the QDQ graph carries the learned scales, and runtimes run it int8."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from edgecraft.backends.onnxruntime.int8_layers import count_layers
from edgecraft.modelio import ModelIO
from edgecraft.models import TorchModel
from edgecraft.plugins.quantization.qat.fakequant import ActivationQuant
from edgecraft.plugins.quantization.qat.prepare import NotTraceable, finalize, prepare, set_phase
from numpy.testing import assert_allclose
from onnx import numpy_helper
from qmodels import SmallCnn, digits, plain
from torch import nn


def _prepared(per_channel: bool = True):
    x, _ = digits("train")
    p = prepare(plain(), per_channel=per_channel)
    set_phase(p, "calibrate")
    with torch.no_grad():
        p.module(torch.from_numpy(x[:64]))
    set_phase(p, "frozen")
    return p, x


def test_quantizers_sit_on_layer_inputs_and_after_the_activation() -> None:
    p = prepare(SmallCnn().eval())
    # input, conv1/2/3 outputs after their ReLU, the flattened fc input, the fc output: one per tensor.
    assert len(p.activations) == 6 and len(p.weights) == 4
    # relu(conv(x)) is quantized as a whole: every ReLU is followed by a quantizer, none sits before it.
    order = [n.op + ":" + str(n.target) for n in p.module.graph.nodes]
    relu_at = [i for i, o in enumerate(order) if "relu" in o]
    assert all(order[i + 1].startswith("call_module:qat_act_") for i in relu_at)


def test_ranges_follow_the_data_then_freeze() -> None:
    quant = ActivationQuant(momentum=0.5)
    quant.train()
    quant(torch.tensor([0.0, 1.0]))  # calibrate: running min/max
    quant(torch.tensor([0.0, 3.0]))
    assert float(quant.high) == 3.0
    quant.phase = "observe"
    quant(torch.tensor([0.0, 1.0]))  # EMA: halfway to the batch's max
    assert float(quant.high) == pytest.approx(2.0)
    quant.freeze()
    quant(torch.tensor([0.0, 100.0]))
    assert float(quant.high) == pytest.approx(2.0) and quant.frozen == (pytest.approx(2.0 / 255), 0)
    # Frozen and training: the straight-through estimator still passes gradients.
    x = torch.tensor([0.5, 1.0], requires_grad=True)
    quant(x).sum().backward()
    assert x.grad is not None and torch.all(x.grad == 1)


@pytest.mark.parametrize("per_channel", [True, False])
def test_export_is_a_qdq_graph_with_the_learned_scales(tmp_path: Path, per_channel: bool) -> None:
    from edgecraft.model_source import export_onnx

    p, x = _prepared(per_channel)
    scales = {name: q.frozen[0] for name, q in p.activations.items() if q.frozen}
    weight_scales = {name: w.layer.weight.detach().abs().flatten(1).amax(1) / 127 for name, w in p.weights.items()}
    module = finalize(p)
    for name, layer in p.weights.items():  # int8 weights, the scales computed from the trained weights
        assert layer.get_buffer("weight_int8").dtype == torch.int8
        expected = weight_scales[name] if per_channel else weight_scales[name].max().reshape(1)
        assert_allclose(layer.get_buffer("weight_scale").numpy(), expected.numpy(), rtol=1e-6)
    io = ModelIO.single("x", (1, 1, 8, 8), output="logits")
    path = export_onnx(TorchModel(module, io), tmp_path / "qat.onnx").path
    graph = onnx.load(str(path)).graph
    ops = Counter(n.op_type for n in graph.node)
    assert ops["Conv"] == 3 and ops["Gemm"] + ops["MatMul"] == 1
    assert ops["QuantizeLinear"] == len(scales)  # one per activation quantizer, none for the weights
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    produced = {o: n for n in graph.node for o in n.output}
    # Every activation Q carries one of the learned scales, exactly.
    q_scales = sorted(float(inits[n.input[1]]) for n in graph.node if n.op_type == "QuantizeLinear")
    assert_allclose(q_scales, sorted(np.float32(s) for s in scales.values()), rtol=1e-6)
    # Every Conv/Gemm reads both its input and its weight through DequantizeLinear; the weight is int8.
    for node in graph.node:
        if node.op_type in ("Conv", "Gemm", "MatMul"):
            data, weight = produced[node.input[0]], produced[node.input[1]]
            assert data.op_type == "DequantizeLinear" and weight.op_type == "DequantizeLinear"
            assert inits[weight.input[0]].dtype == np.int8
    # ONNX Runtime runs it on integer kernels, and its outputs agree with the torch simulation.
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    optimized = onnx.load(str(tmp_path / "optimized.onnx")).graph.node
    layers = count_layers([n.op_type for n in optimized], [n.name for n in optimized])
    assert layers["all_int8"] and layers["int8"].get("QLinearConv") == 3, layers
    sample = x[:200]
    got = session.run(None, {"x": sample})[0]
    with torch.no_grad():
        want = module(torch.from_numpy(sample)).numpy()
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.97


def test_untraceable_models_are_refused_with_the_reason() -> None:
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x) if x.sum() > 0 else -self.fc(x)

    with pytest.raises(NotTraceable):
        prepare(Branchy())


@pytest.mark.slow  # two dynamo exports and two runtimes' compilations: ~10 s each on a busy machine
@pytest.mark.parametrize("backend", ["onnxruntime", pytest.param("openvino", marks=pytest.mark.openvino)])
def test_sessions_say_per_layer_whether_it_ran_int8(tmp_path: Path, backend: str) -> None:
    """The runtimes' own account (``describe()["int8_layers"]``): all int8 for the QAT graph, all float for fp32."""
    from edgecraft.model_source import export_onnx
    from edgecraft.registry import build_registry

    registry = build_registry()
    io = ModelIO.single("x", (1, 1, 8, 8), output="logits")
    p, _ = _prepared()
    graphs = {"qat": export_onnx(TorchModel(finalize(p), io), tmp_path / "qat.onnx").path,
              "fp32": export_onnx(TorchModel(plain(), io), tmp_path / "fp32.onnx").path}
    target = "ort-cpu" if backend == "onnxruntime" else "openvino-cpu"
    runtime, info = registry.target(target)
    options = info.options_model.model_validate(
        {} if backend == "onnxruntime" else {"inference_precision": "f32"})
    for name, path in graphs.items():
        work, out = tmp_path / f"work-{name}", tmp_path / f"out-{name}"
        work.mkdir()
        out.mkdir()
        runtime.save(runtime.import_onnx(path, target, options, work), target, options, out)
        session = runtime.load(out, target, options, 1)
        layers = session.describe()["int8_layers"]
        session.close()
        assert sum(layers["int8" if name == "qat" else "float"].values()) == 4, layers
        assert layers["all_int8"] is (name == "qat") and (not layers["float_layers"]) is (name == "qat")


def test_the_default_loss_is_distillation_and_labels_join_only_when_present() -> None:
    from edgecraft import torchkit
    from edgecraft.errors import InputError
    from edgecraft.plugins.quantization.qat.training import _objective

    x, y = digits("test")
    labeled, unlabeled = torchkit.TorchData.from_arrays(x, y), torchkit.TorchData.from_arrays(x)
    teacher = plain()
    pure = _objective("auto", teacher, unlabeled, 2.0, 0, "steps[0] (qat)")
    mixed = _objective("auto", teacher, labeled, 2.0, 0, "steps[0] (qat)")
    assert isinstance(pure, torchkit.TeacherMatch) and pure.alpha is None and pure.kind == "kl"
    assert isinstance(mixed, torchkit.TeacherMatch) and mixed.alpha == 0.5
    assert isinstance(_objective("labels", teacher, labeled, 2.0, 0, "w"), torchkit.CrossEntropy)
    with pytest.raises(InputError, match=r"params\.qat\.loss 'labels'"):
        _objective("labels", teacher, unlabeled, 2.0, 0, "steps[0] (qat)")
