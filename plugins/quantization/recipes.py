"""Which int8 recipe suits a model (``recipe: auto | cnn | transformer | hybrid``), from ONNX graphs or torch modules.

The CNN recipe quantizes every op a backend can run in int8. The transformer recipe keeps Softmax,
LayerNorm, the residual Adds and the additive attention mask in float and quantizes the weight MatMuls
(each backend's implementation says how: SmoothQuant and dynamic per-channel weights, or its tool's
transformer preset): the CNN recipe broke a transformer (MiniLM: embedding cosine 0.35, and slower than
fp32), the transformer recipe kept it at cosine 0.997 and 2.2-2.4x faster (benchmarks/transformers.py).

A model with both (a CNN backbone and an attention neck, as PP-OCRv4's text recognizer) is **hybrid**: given
the transformer recipe every convolution stayed float (1.05x over fp32 on that recognizer); given the CNN recipe
Softmax, LayerNorm and the residual Adds were quantized too. The hybrid recipe gives each part its own recipe
in one quantization (the backend says how). A model is hybrid when, besides attention, it has at least
:data:`HYBRID_MIN_CONVS` Convs holding at least :data:`HYBRID_MIN_CONV_SHARE` of the weight parameters (so a
ViT's single patch-embedding conv, or an audio transformer's two-conv stem, stays 'transformer').

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


#: A hybrid model has at least this many Convs ...
HYBRID_MIN_CONVS = 4
#: ... holding at least this share of the weight parameters (Conv + weight MatMul/Gemm initializers).
HYBRID_MIN_CONV_SHARE = 0.10


def _conv_part(graph: Any) -> tuple[int, float]:
    """(number of Convs, their share of the weight parameters), from the dimensions of the initializers and
    Constant nodes (Paddle's exporter writes weights as Constants) only."""
    dims = {t.name: list(t.dims) for t in graph.initializer}
    dims.update({n.output[0]: list(a.t.dims) for n in graph.node if n.op_type == "Constant"
                 for a in n.attribute if a.name == "value" and a.HasField("t")})

    def size(name: str) -> int:
        out = 1
        for d in dims.get(name, [0]):
            out *= int(d)
        return out

    convs = [n for n in graph.node if n.op_type in ("Conv", "ConvTranspose")]
    conv_params = sum(size(n.input[1]) for n in convs if len(n.input) > 1 and n.input[1] in dims)
    other = sum(size(n.input[1]) for n in graph.node if n.op_type in ("MatMul", "Gemm") and len(n.input) > 1
                and n.input[1] in dims)
    total = conv_params + other
    return len(convs), (conv_params / total if total else 0.0)


def _with_conv_part(graph: Any, found: RecipeFinding) -> RecipeFinding:
    convs, share = _conv_part(graph)
    if convs >= HYBRID_MIN_CONVS and share >= HYBRID_MIN_CONV_SHARE:
        return RecipeFinding("hybrid", f"{found.reason}; and a convolutional part: {convs} Convs, "
                             f"{100 * share:.0f}% of the weights")
    return found


def detect_onnx(path: Path) -> RecipeFinding:
    """Whether an ONNX graph holds attention blocks (its structure only; external weights are not loaded)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return detect_onnx_graph(graph)


def detect_onnx_graph(graph: Any) -> RecipeFinding:
    found = _attention(graph)
    return found if found.recipe == "cnn" else _with_conv_part(graph, found)


def _attention(graph: Any) -> RecipeFinding:
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
            if node is None or node.output[0] in seen:  # by output: exporters may leave node names empty
                continue
            seen.add(node.output[0])
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
