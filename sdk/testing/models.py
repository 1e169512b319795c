"""Tiny models the conformance kit runs plugins on, built on the fly (nothing to download, a few KB).

Two shapes of model cover what plugins get wrong most often:

* ``cnn``: one float32 image input ``input[batch, 1, 8, 8]`` → Conv → Relu → pool → Gemm → ``logits[batch, 3]``;
* ``multi``: a float32 ``x[batch, 4]`` and an int64 ``ids[batch, 3]`` (an embedding lookup) →
  ``logits[batch, 3]``: a plugin that assumes one float input fails here.

Each exists as an ONNX graph (:func:`cnn_onnx`, :func:`multi_input_onnx`: for backends, via
``onnx.helper``) and as a torch module (:func:`tiny_cnn`, :func:`tiny_multi_input`: for strategies,
through a plan's ``{kind: torch, factory: edgecraft.testing.models:tiny_cnn}`` so torch-, ONNX- and
native-stage steps all get their stage's handle). Weights are seeded, so results are reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

CLASSES = 3
VOCAB = 10


@dataclass(frozen=True)
class KitModel:
    """One bundled model: how a plan declares it, and how to make feeds for it."""

    name: str
    description: str
    #: The plan's ``model:`` entry (a torch factory in this module).
    source: dict[str, Any]
    #: input name -> (shape without the batch axis, numpy dtype)
    inputs: dict[str, tuple[tuple[int, ...], str]]

    def feeds(self, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
        """Random feeds (ids within the vocabulary), the same for a given seed."""
        rng = np.random.default_rng(seed)
        out: dict[str, np.ndarray] = {}
        for name, (shape, dtype) in self.inputs.items():
            if dtype == "int64":
                out[name] = rng.integers(0, VOCAB, (batch, *shape), dtype=np.int64)
            else:
                out[name] = rng.standard_normal((batch, *shape)).astype(np.float32)
        return out

    def write_dataset(self, path: Path, samples: int = 16) -> Path:
        """An .npz dataset (every input plus labels ``y``) the kit's plans read."""
        labels = np.random.default_rng(1).integers(0, CLASSES, samples, dtype=np.int64)
        np.savez(path, **self.feeds(samples), y=labels)
        return path


CNN = KitModel("cnn", "single float32 input [batch,1,8,8] (Conv, Relu, GlobalAveragePool, Gemm)",
               {"kind": "torch", "factory": "edgecraft.testing.models:tiny_cnn", "input_shape": [1, 1, 8, 8],
                "output_name": "logits", "exporter": "torchscript"},
               {"input": ((1, 8, 8), "float32")})
MULTI = KitModel("multi", "float32 x [batch,4] + int64 ids [batch,3] (embedding lookup, MatMul)",
                 {"kind": "torch", "factory": "edgecraft.testing.models:tiny_multi_input",
                  "inputs": {"x": {"shape": ["batch", 4], "dtype": "float32"},
                             "ids": {"shape": ["batch", 3], "dtype": "int64"}},
                  "output_name": "logits", "exporter": "torchscript"},
                 {"x": ((4,), "float32"), "ids": ((3,), "int64")})
KIT_MODELS = (CNN, MULTI)


# ---------------------------------------------------------------------------- torch (strategies)
def tiny_cnn() -> torch.nn.Module:
    """``input[batch,1,8,8]`` → ``logits[batch,3]``: the single-input model."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, CLASSES)).eval()


def tiny_multi_input() -> torch.nn.Module:
    """``x[batch,4]`` (float32) and ``ids[batch,3]`` (int64) → ``logits[batch,3]``."""
    import torch
    from torch import nn

    class MultiInput(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(VOCAB, 4)
            self.hidden = nn.Linear(4, 8)
            self.head = nn.Linear(8, CLASSES)

        def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
            return self.head(torch.relu(self.hidden(x + self.embed(ids).mean(dim=1))))

    torch.manual_seed(0)
    return MultiInput().eval()


# ---------------------------------------------------------------------------- ONNX (backends)
def _onnx_model(graph: Any, opset: int) -> Any:
    from onnx import checker, helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="edgecraft.testing")
    model.ir_version = min(model.ir_version, 9)  # loadable by every onnxruntime the core supports
    checker.check_model(model, full_check=True)
    return model


def cnn_onnx(path: Path, *, opset: int = 17) -> Path:
    """Write the single-input CNN as ONNX (``input[batch,1,8,8]`` → ``logits[batch,3]``)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array((rng.standard_normal((4, 1, 3, 3)) * 0.5).astype(np.float32), "conv_w"),
             numpy_helper.from_array(rng.standard_normal(4).astype(np.float32) * 0.1, "conv_b"),
             numpy_helper.from_array((rng.standard_normal((CLASSES, 4)) * 0.5).astype(np.float32), "fc_w"),
             numpy_helper.from_array(rng.standard_normal(CLASSES).astype(np.float32) * 0.1, "fc_b")]
    nodes = [helper.make_node("Conv", ["input", "conv_w", "conv_b"], ["conv"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["conv"], ["relu"], name="relu"),
             helper.make_node("GlobalAveragePool", ["relu"], ["pool"], name="pool"),
             helper.make_node("Flatten", ["pool"], ["flat"], name="flatten"),
             helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=1, name="fc")]
    graph = helper.make_graph(nodes, "edgecraft_kit_cnn",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", CLASSES])],
                              inits)
    onnx.save(_onnx_model(graph, opset), str(path))
    return path


def multi_input_onnx(path: Path, *, opset: int = 17) -> Path:
    """Write the two-input model as ONNX (``x`` float32 [batch,4], ``ids`` int64 [batch,3] → ``logits``)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((VOCAB, 4)).astype(np.float32), "embed"),
             numpy_helper.from_array((rng.standard_normal((4, CLASSES)) * 0.5).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(CLASSES).astype(np.float32) * 0.1, "b")]
    nodes = [helper.make_node("Gather", ["embed", "ids"], ["emb"], axis=0, name="embed_lookup"),
             helper.make_node("ReduceMean", ["emb"], ["emb_mean"], axes=[1], keepdims=0, name="mean"),
             helper.make_node("Add", ["x", "emb_mean"], ["h"], name="add"),
             helper.make_node("MatMul", ["h", "w"], ["mm"], name="matmul"),
             helper.make_node("Add", ["mm", "b"], ["logits"], name="bias")]
    graph = helper.make_graph(nodes, "edgecraft_kit_multi",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4]),
                               helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", 3])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", CLASSES])],
                              inits)
    onnx.save(_onnx_model(graph, min(opset, 17)), str(path))  # ReduceMean takes axes as an attribute up to 17
    return path


ONNX_BUILDERS = {"cnn": (cnn_onnx, CNN), "multi": (multi_input_onnx, MULTI)}

