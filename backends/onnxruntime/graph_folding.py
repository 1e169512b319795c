"""Exact float rewrites that let ONNX Runtime's int8 kernels do a convolutional model's work (issue 26, item 5).

Exported CNNs often carry per-layer scalar affines and activations spelled as several element-wise ops; in an
int8 graph each of them runs in float between a DequantizeLinear and the next QuantizeLinear, and on PP-OCRv4's
recognizer (PPLCNetV3: Conv → ×s → +b → hardswish → ×s → +b → Conv) those element-wise ops took ~60% of the int8
model's time (onnxruntime profiling, 1 thread). Two rewrites, both exact in real arithmetic:

* **Fold a constant affine into a Conv.** ``Conv → Mul(c) → Add(d)`` with per-tensor or per-output-channel
  constants becomes one Conv (``W' = c·W``, ``B' = c·B + d``). Before a Conv without padding (a 1×1 conv),
  ``Mul(c) → Add(d) → Conv`` folds too (``W' = W·c``, ``B' = B + Σ W·d``); with padding it would change the
  border (the pad is zeros of the affine's output), so it is left. ONNX Runtime's own ConvMulFusion and
  ConvAddFusion miss these when the constant is the Mul's first operand, as Paddle's exporter writes it.
* **Hard-swish as HardSigmoid·x.** ``x · clip(x + 3, 0, 6) / 6`` (4 ops) is ``x · HardSigmoid(x; 1/6, 1/2)``
  (2 ops, any opset).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _const(inits: dict[str, Any], name: str) -> np.ndarray | None:
    from onnx import numpy_helper

    return numpy_helper.to_array(inits[name]).astype(np.float32) if name in inits else None


def _index(graph: Any) -> tuple[dict[str, Any], dict[str, list[Any]], set[str]]:
    inits = {t.name: t for t in graph.initializer}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    return inits, consumers, {o.name for o in graph.output}


def _operand(node: Any, inits: dict[str, Any], tensor: str) -> np.ndarray | None:
    """The constant operand of a binary ``node`` whose other operand is ``tensor`` (either order)."""
    if len(node.input) != 2 or tensor not in node.input:
        return None
    other = node.input[1] if node.input[0] == tensor else node.input[0]
    return _const(inits, other)


def _per_channel(value: np.ndarray, channels: int) -> np.ndarray | None:
    """A constant that broadcasts over an NCHW tensor per channel (or per tensor), as a [channels] vector."""
    if value.size == 1:
        return np.full(channels, float(value.reshape(-1)[0]), np.float32)
    squeezed = value.reshape(-1)
    if squeezed.size == channels and value.ndim >= 3 and value.shape[-value.ndim] in (channels, 1) and all(
            d == 1 for d in value.shape[-2:]):
        return squeezed.astype(np.float32)
    return None


def _single(consumers: dict[str, list[Any]], outputs: set[str], tensor: str) -> Any | None:
    users = consumers.get(tensor, [])
    return users[0] if len(users) == 1 and tensor not in outputs else None


def _set(graph: Any, inits: dict[str, Any], name: str, value: np.ndarray) -> str:
    from onnx import numpy_helper

    new = numpy_helper.from_array(value.astype(np.float32), f"{name}_folded")
    graph.initializer.append(new)
    inits[new.name] = new
    return new.name


def fold_affine_into_conv(graph: Any) -> int:
    """Fold ``Conv → Mul → Add`` (and ``Mul → Add → Conv`` for pad-free convs) constants; returns how many."""
    folded = 0
    changed = True
    while changed:
        changed = False
        inits, consumers, outputs = _index(graph)
        for conv in list(graph.node):
            if conv.op_type != "Conv" or len(conv.input) < 2 or conv.input[1] not in inits:
                continue
            weight = _const(inits, conv.input[1])
            assert weight is not None
            bias = _const(inits, conv.input[2]) if len(conv.input) > 2 and conv.input[2] else np.zeros(
                weight.shape[0], np.float32)
            if bias is None:
                continue
            if _fold_after(graph, conv, weight, bias, inits, consumers, outputs) or _fold_before(
                    graph, conv, weight, bias, inits, consumers, outputs):
                folded += 1
                changed = True
                break
    return folded


def _fold_after(graph: Any, conv: Any, weight: np.ndarray, bias: np.ndarray, inits: dict[str, Any],
                consumers: dict[str, list[Any]], outputs: set[str]) -> bool:
    out = conv.output[0]
    first = _single(consumers, outputs, out)
    if first is None or first.op_type not in ("Mul", "Add"):
        return False
    chain = [first]
    nxt = _single(consumers, outputs, first.output[0])
    if first.op_type == "Mul" and nxt is not None and nxt.op_type == "Add":
        chain.append(nxt)
    scale, shift = np.ones(weight.shape[0], np.float32), np.zeros(weight.shape[0], np.float32)
    tensor = out
    for node in chain:
        raw = _operand(node, inits, tensor)
        value = None if raw is None else _per_channel(raw, weight.shape[0])
        if value is None:
            if node is chain[0]:
                return False
            chain = chain[:1]
            break
        if node.op_type == "Mul":
            scale, shift = scale * value, shift * value
        else:
            shift = shift + value
        tensor = node.output[0]
    last = chain[-1].output[0]
    new_w = _set(graph, inits, conv.input[1], weight * scale.reshape(-1, *([1] * (weight.ndim - 1))))
    new_b = _set(graph, inits, conv.input[1] + "_bias", bias * scale + shift)
    conv.input[1] = new_w
    if len(conv.input) > 2:
        conv.input[2] = new_b
    else:
        conv.input.append(new_b)
    conv.output[0] = last
    for node in chain:
        graph.node.remove(node)
    return True


def _fold_before(graph: Any, conv: Any, weight: np.ndarray, bias: np.ndarray, inits: dict[str, Any],
                 consumers: dict[str, list[Any]], outputs: set[str]) -> bool:
    pads = next((list(a.ints) for a in conv.attribute if a.name == "pads"), [])
    auto = next((a.s for a in conv.attribute if a.name == "auto_pad"), b"NOTSET")
    group = next((a.i for a in conv.attribute if a.name == "group"), 1)
    if any(pads) or auto not in (b"NOTSET", b"VALID") or group != 1:
        return False
    producer = {o: n for n in graph.node for o in n.output}
    add = producer.get(conv.input[0])
    if add is None or add.op_type != "Add" or _single(consumers, outputs, add.output[0]) is not conv:
        return False
    mul = next((producer[i] for i in add.input if i in producer and producer[i].op_type == "Mul"), None)
    if mul is None or _single(consumers, outputs, mul.output[0]) is not add:
        return False
    c_in = weight.shape[1]
    raw_d, raw_c = _operand(add, inits, mul.output[0]), None
    source = next((i for i in mul.input if i not in inits), None)
    if source is not None:
        raw_c = _operand(mul, inits, source)
    d = None if raw_d is None else _per_channel(raw_d, c_in)
    c = None if raw_c is None else _per_channel(raw_c, c_in)
    if c is None or d is None or source is None:
        return False
    shape = (1, c_in) + (1,) * (weight.ndim - 2)
    new_w = _set(graph, inits, conv.input[1], weight * c.reshape(shape))
    new_b = _set(graph, inits, conv.input[1] + "_bias", bias + (weight * d.reshape(shape)).sum(
        axis=tuple(range(1, weight.ndim))))
    conv.input[0] = source
    conv.input[1] = new_w
    if len(conv.input) > 2:
        conv.input[2] = new_b
    else:
        conv.input.append(new_b)
    graph.node.remove(add)
    graph.node.remove(mul)
    return True


def hardswish_as_hardsigmoid(graph: Any) -> int:
    """``Mul(x, Clip(Add(x, 3), 0, 6)) / 6`` → ``Mul(x, HardSigmoid(x, 1/6, 1/2))``; returns how many."""
    from onnx import helper

    inits, consumers, outputs = _index(graph)
    producer = {o: n for n in graph.node for o in n.output}
    done = 0
    for div in list(graph.node):
        if div.op_type != "Div" or div.input[1] not in inits or not np.allclose(_const(inits, div.input[1]), 6.0):
            continue
        mul = producer.get(div.input[0])
        if mul is None or mul.op_type != "Mul" or _single(consumers, outputs, mul.output[0]) is not div:
            continue
        clip = next((producer[i] for i in mul.input if i in producer and producer[i].op_type == "Clip"), None)
        if clip is None or _single(consumers, outputs, clip.output[0]) is not mul or len(clip.input) < 3:
            continue
        low, high = _const(inits, clip.input[1]), _const(inits, clip.input[2])
        add = producer.get(clip.input[0])
        if (low is None or high is None or not np.allclose(low, 0) or not np.allclose(high, 6) or add is None
                or add.op_type != "Add" or _single(consumers, outputs, add.output[0]) is not clip):
            continue
        x = next((i for i in add.input if i not in inits), None)
        three = _operand(add, inits, x) if x is not None else None
        if x is None or three is None or three.size != 1 or not np.allclose(three, 3.0) or x not in mul.input:
            continue
        gate = f"{div.output[0]}_hardsigmoid"
        new = [helper.make_node("HardSigmoid", [x], [gate], alpha=1.0 / 6.0, beta=0.5, name=gate),
               helper.make_node("Mul", [x, gate], [div.output[0]], name=f"{div.output[0]}_hardswish")]
        at = list(graph.node).index(add)
        for node in (add, clip, mul, div):
            graph.node.remove(node)
        for offset, node in enumerate(new):
            graph.node.insert(at + offset, node)
        done += 1
    return done


def simplify(src: Path, dst: Path) -> tuple[Path, dict[str, int]]:
    """Apply both rewrites to ``src``; returns the file to quantize (``src`` when nothing changed) and counts."""
    import onnx

    model = onnx.load(str(src))
    counts = {"affines_folded_into_conv": fold_affine_into_conv(model.graph),
              "hardswish_rewritten": hardswish_as_hardsigmoid(model.graph)}
    if not any(counts.values()):
        return src, counts
    used = {i for n in model.graph.node for i in n.input}
    keep = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    onnx.save(model, str(dst))
    return dst, counts
