"""A factorized model exports to ONNX (dynamo exporter, as edgecraft does) and ONNX Runtime reproduces torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from edgecraft.plugins.factorization.engine import FactorizationConfig, factorize_model
from factorization_models import SmallCNN, SmallMLP


def _export_and_run(module: torch.nn.Module, x: torch.Tensor, path: Path) -> np.ndarray:
    torch.onnx.export(module, (x[:1],), str(path), input_names=["input"], output_names=["output"],
                      dynamic_shapes={"x": {0: torch.export.Dim("batch")}}, dynamo=True, opset_version=18,
                      external_data=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x.numpy()})[0]


@pytest.mark.slow
@pytest.mark.parametrize("conv_method", ["spatial", "tucker"])
def test_factorized_cnn_runs_on_onnxruntime(conv_method: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = SmallCNN().eval()
    x = torch.randn(4, 1, 16, 16)
    result = factorize_model(model, x[:1], FactorizationConfig(selection="ratio", ratio=0.5, conv_method=conv_method))
    assert {layer.method for layer in result.factorized} >= {conv_method, "svd"}
    out = _export_and_run(result.module, x, tmp_path / "cnn.onnx")
    with torch.no_grad():
        np.testing.assert_allclose(out, result.module(x).numpy(), rtol=1e-4, atol=1e-5)
    graph = onnx.load(str(tmp_path / "cnn.onnx")).graph
    kernels = {tuple(a.ints) for n in graph.node if n.op_type == "Conv"
               for a in n.attribute if a.name == "kernel_shape"}
    assert ((3, 1) in kernels and (1, 3) in kernels) if conv_method == "spatial" else (1, 1) in kernels


@pytest.mark.slow
def test_factorized_mlp_runs_on_onnxruntime_and_is_smaller(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = SmallMLP(inputs=256).eval()
    x = torch.randn(3, 256)
    result = factorize_model(model, x[:1], FactorizationConfig(selection="rank", rank=16))
    out = _export_and_run(result.module, x, tmp_path / "mlp.onnx")
    with torch.no_grad():
        np.testing.assert_allclose(out, result.module(x).numpy(), rtol=1e-4, atol=1e-5)
    torch.onnx.export(model, (x[:1],), str(tmp_path / "orig.onnx"), input_names=["input"], dynamo=True,
                      external_data=False)
    assert (tmp_path / "mlp.onnx").stat().st_size < 0.5 * (tmp_path / "orig.onnx").stat().st_size
