"""export_onnx's 'auto' exporter: TorchScript first, dynamo when TorchScript has no ONNX form for an op."""

from __future__ import annotations

from pathlib import Path

import pytest
from edgecraft.errors import InputError
from edgecraft.model_source import export_onnx
from edgecraft.modelio import ModelIO, TensorSpec
from edgecraft.models import TorchModel

torch = pytest.importorskip("torch")


class DecomposedQuantize(torch.nn.Module):
    """What QAT exports: torch's decomposed quantize ops, which only the dynamo exporter turns into Q/DQ."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import torch.ao.quantization.fx._decomposed  # registers torch.ops.quantized_decomposed

        q = torch.ops.quantized_decomposed.quantize_per_tensor(x, 0.1, 128, 0, 255, torch.uint8)
        return torch.ops.quantized_decomposed.dequantize_per_tensor(q, 0.1, 128, 0, 255, torch.uint8)


def model() -> TorchModel:
    io = ModelIO((TensorSpec("x", "float32", ("batch", 4), 0),), (TensorSpec("y", "float32", ("batch", 4), 0),))
    return TorchModel(DecomposedQuantize(), io, [], {})


def test_auto_falls_back_to_dynamo_and_says_so(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    import onnx

    exported = export_onnx(model(), tmp_path / "m.onnx", exporter="auto")
    assert exported.lineage == [{"export": {"exporter": "dynamo (TorchScript failed)", "opset": 18}}]
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in onnx.load(str(exported.path)).graph.node}
    assert "graph" not in capfd.readouterr().out  # torch's IR dump of the failed attempt is kept off stdout


def test_torchscript_alone_fails_naming_the_exporter_and_leaves_no_file(tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    with pytest.raises(InputError, match="torchscript exporter") as caught:
        export_onnx(model(), out, exporter="torchscript")
    assert caught.value.hint is not None and "dynamo" in caught.value.hint
    assert not out.exists()


def test_unknown_exporter_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"model\.exporter"):
        export_onnx(model(), tmp_path / "m.onnx", exporter="tracing")
