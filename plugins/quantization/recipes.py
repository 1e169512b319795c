"""Which int8 recipe suits a model (``recipe: auto | cnn | transformer``), read from the ONNX graph or torch modules.

The CNN recipe quantizes every op a backend can run in int8. The transformer recipe keeps Softmax,
LayerNorm, the residual Adds and the additive attention mask in float and quantizes the weight MatMuls
(each backend's implementation says how: SmoothQuant and dynamic per-channel weights, or its tool's
transformer preset): the CNN recipe broke a transformer (MiniLM: embedding cosine 0.35, and slower than
fp32), the transformer recipe kept it at cosine 0.997 and 2.2-2.4x faster (benchmarks/transformers.py).

Detection is structural and cheap: an attention block is a Softmax fed (through scale/mask arithmetic)
by a MatMul of two activations (Q·Kᵀ), or an ONNX Runtime fused attention op. No weights are read. ONNX
is the interchange format every backend imports, so reading it here names no runtime; a model in a
backend's native format is read by that backend (``Int8Implementation.detect_recipe``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgecraft.quantize import RecipeFinding

#: Ops between Q·Kᵀ and Softmax in exported attention (scale, mask, casts, reshapes).
_SCORE_PATH = ("Add", "Div", "Mul", "Where", "Cast", "Reshape", "Sub", "Transpose", "Slice", "Expand")
#: ONNX Runtime contrib ops that are attention blocks by definition.
_FUSED_ATTENTION = ("Attention", "MultiHeadAttention", "QAttention", "GroupQueryAttention",
                    "PackedAttention", "EmbedLayerNormalization")


def detect_onnx(path: Path) -> RecipeFinding:
    """Whether an ONNX graph holds attention blocks (its structure only; external weights are not loaded)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return detect_onnx_graph(graph)


def detect_onnx_graph(graph: Any) -> RecipeFinding:
    consts = {t.name for t in graph.initializer}
    consts |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    producer = {out: n for n in graph.node for out in n.output}
    fused = sorted({n.op_type for n in graph.node if n.op_type in _FUSED_ATTENTION})
    if fused:
        return RecipeFinding("transformer", f"fused attention op(s) {fused} in the graph")
    softmaxes = [n for n in graph.node if n.op_type == "Softmax"]
    for soft in softmaxes:
        seen, stack = set(), [soft.input[0]]
        while stack:
            tensor = stack.pop()
            node = producer.get(tensor)
            if node is None or node.name in seen:
                continue
            seen.add(node.name)
            if node.op_type == "MatMul" and not any(i in consts for i in node.input[:2]):
                norms = sum(1 for n in graph.node if n.op_type in ("LayerNormalization", "SimplifiedLayerNormalization",
                                                                   "SkipLayerNormalization"))
                example = node.name or node.output[0]
                return RecipeFinding("transformer", f"attention: {len(softmaxes)} Softmax fed by a MatMul of two "
                                     f"activations (Q·Kᵀ, e.g. {example!r}), {norms} LayerNorm(s)")
            if node.op_type in _SCORE_PATH:
                stack.extend(i for i in node.input if i and i not in consts)
    return RecipeFinding("cnn", "no attention block (no Softmax fed by a MatMul of two activations)")


def detect_torch(module: Any) -> RecipeFinding:
    """Attention layers among a torch model's modules (``nn.MultiheadAttention``, ``nn.Transformer*Layer``, or a
    class named ``*Attention``, as Hugging Face and timm name theirs)."""
    names = sorted({type(m).__name__ for m in module.modules()
                    if type(m).__name__ in ("MultiheadAttention", "TransformerEncoderLayer", "TransformerDecoderLayer")
                    or type(m).__name__.endswith(("Attention", "SelfAttention"))})
    if names:
        return RecipeFinding("transformer", f"attention modules in the torch model: {names[:4]}")
    return RecipeFinding("cnn", "no attention module in the torch model (nn.MultiheadAttention or a *Attention class)")
