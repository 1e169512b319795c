"""The transformer recipe on ONNX Runtime: SmoothQuant on the weight MatMuls, and a measured choice of strength.

Why (measured on all-MiniLM-L6-v2: 6 layers, hidden 384, batch 1, sequence 64, 2 threads, AVX-512
VNNI; see benchmarks/transformers.py):

* The CNN recipe (static QDQ on every op) broke a transformer: ``quantize_static`` quantizes Softmax,
  LayerNorm, the residual Adds and the additive attention mask (a -10000 constant in an int8 range
  shared with activations of order 1): embedding cosine 0.35, and 0.6× the fp32 speed.
* Restricting static QDQ to the weight MatMuls gave cosine 0.94 at 2.2×: per-tensor activation ranges
  fixed at calibration time do not fit LayerNorm outputs, whose few outlier channels are 10-100× larger
  than the rest. Dynamic quantization (range per call) gave 0.993 at the same speed.
* **SmoothQuant** (Xiao et al., 2023) moves that range imbalance from activations to weights: each input
  channel j of a weight MatMul is divided by ``s_j = max|X_j|^a / max|W_j|^(1-a)`` and the matching
  weight row multiplied by it (an exact rewrite in float). After it, dynamic per-channel int8 reached
  cosine 0.9977 (alpha 0.75) instead of 0.9931 on the held-out sentences, at 1.04-1.07× the latency of
  plain dynamic quantization (the 1/s Muls a post-LN model needs; alpha 0.5, the paper's default, was
  worse than no smoothing with per-channel weights).
  ``onnxruntime.quantization`` offers SmoothQuant only through Intel Neural Compressor (not a
  dependency here), so :func:`smooth_matmul_inputs` does it by hand.
* The recipe is a *measured* choice between a few candidates (plain dynamic and SmoothQuant at two or
  three strengths) on the calibration samples: the best output fidelity wins, and among candidates
  within :data:`FIDELITY_TIE` of it the fastest on this CPU (:func:`choose`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Candidates whose calibration fidelity is within this of the best count as equally good; the fastest wins.
FIDELITY_TIE = 5e-4
#: SmoothQuant strengths measured when ``smooth_alpha`` is not set (on MiniLM, calibration-set cosine: none
#: 0.9926, 0.6: 0.9957, 0.7: 0.9974, 0.75: 0.9969, 0.8: 0.9969, 0.9: 0.9947; 0.5 was worse than none).
SMOOTH_CANDIDATES = (0.6, 0.75)


# ---------------------------------------------------------------- SmoothQuant for ONNX weight MatMuls
@dataclass
class SmoothStats:
    """Per-channel max |activation| of every weight-MatMul input, from the calibration samples."""

    groups: dict[str, list[str]]  # input tensor -> names of the weight MatMuls consuming it
    amax: dict[str, np.ndarray]
    samples: int


def weight_matmuls(graph: Any) -> dict[str, list[Any]]:
    """Weight MatMuls (B a 2-D initializer, A computed) grouped by their input tensor."""
    inits = {t.name: t for t in graph.initializer}
    groups: dict[str, list[Any]] = {}
    for node in graph.node:
        if (node.op_type == "MatMul" and node.input[1] in inits and len(inits[node.input[1]].dims) == 2
                and node.input[0] not in inits):
            groups.setdefault(node.input[0], []).append(node)
    return groups


def is_attention_context(graph: Any, tensor: str) -> bool:
    """True when ``tensor`` is, through Reshape/Transpose, the output of a MatMul of two activations (attention·V).

    Such an input (the output projection's) is a convex mix of V's rows, so its range is bounded by V's and
    has no outlier channels of its own: smoothing it gained nothing on MiniLM (eval cosine 0.99773 without,
    0.99766 with) and would cost an extra Mul per layer.
    """
    consts = {t.name for t in graph.initializer}
    producer = {out: n for n in graph.node for out in n.output}
    node = producer.get(tensor)
    while node is not None and node.op_type in ("Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze"):
        node = producer.get(node.input[0])
    return node is not None and node.op_type == "MatMul" and not any(i in consts for i in node.input[:2])


def collect_smooth_stats(path: Path, batches: list[dict[str, np.ndarray]], threads: int,
                         exclude: set[str]) -> SmoothStats:
    """One float pass over the calibration samples with every weight-MatMul input exposed as an output."""
    import onnx
    import onnxruntime as ort
    from onnx import helper

    model = onnx.load(str(path))
    groups = {a: [n.name for n in nodes if n.name not in exclude]
              for a, nodes in weight_matmuls(model.graph).items() if not is_attention_context(model.graph, a)}
    groups = {a: names for a, names in groups.items() if names}
    present = {o.name for o in model.graph.output}
    for tensor in groups:
        if tensor not in present:
            model.graph.output.append(helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = list(groups)
    amax: dict[str, np.ndarray] = {}
    for batch in batches:
        for tensor, value in zip(names, session.run(names, batch), strict=True):
            m = np.abs(np.asarray(value, dtype=np.float32)).reshape(-1, value.shape[-1]).max(axis=0)
            amax[tensor] = m if tensor not in amax else np.maximum(amax[tensor], m)
    return SmoothStats(groups, amax, len(batches))


def smooth_matmul_inputs(src: Path, dst: Path, stats: SmoothStats, alpha: float) -> dict[str, Any]:
    """Write ``src`` with SmoothQuant applied to every weight-MatMul input in ``stats``; returns a summary.

    The float rewrite is exact: ``X @ W == (X / s) @ (s[:, None] * W)``. The ``1/s`` is folded into the
    input's producer where that is free: a Mul by a constant (the last factor of an exported GELU,
    ``x * (0.5 * (1 + erf(x/√2)))``), or a LayerNormalization whose output feeds only these MatMuls
    (pre-LN models). Otherwise it lands in a new ``Mul`` before the MatMuls: in the post-LN layout of
    BERT-family models the norm output is also the residual, which must stay unscaled (measured cost
    on MiniLM: 12 such Muls, 4-7% of the dynamic-int8 latency, with ORT's thread pool not spinning
    between ops as edgecraft configures it for timing).
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    by_name = {n.name: n for n in graph.node}
    producer = {out: n for n in graph.node for out in n.output}
    consumers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    graph_outputs = {o.name for o in graph.output}
    inserted, folded, folded_mul = 0, 0, 0
    for tensor, names in stats.groups.items():
        nodes = [by_name[n] for n in names if n in by_name]
        weights = [numpy_helper.to_array(inits[n.input[1]]).astype(np.float32) for n in nodes]
        wmax = np.max([np.abs(w).max(axis=1) for w in weights], axis=0)
        amax = stats.amax[tensor]
        scale = np.where((amax > 0) & (wmax > 0),
                         np.power(np.maximum(amax, 1e-8), alpha) / np.power(np.maximum(wmax, 1e-8), 1 - alpha), 1.0)
        scale = np.clip(scale, 1e-2, 1e2).astype(np.float32)
        for node, weight in zip(nodes, weights, strict=True):
            init = inits[node.input[1]]
            shared = sum(1 for n in graph.node if node.input[1] in n.input) > 1
            new = numpy_helper.from_array((weight * scale[:, None]).astype(np.float32),
                                          f"{init.name}_smoothed" if shared else init.name)
            if shared:
                graph.initializer.append(new)
                inits[new.name] = new
                node.input[1] = new.name
            else:
                init.CopyFrom(new)
        if _fold_into_constant_mul(graph, tensor, 1.0 / scale, inits, producer, consumers, len(nodes)):
            folded_mul += 1
            continue
        norm = producer.get(tensor)
        if (norm is not None and norm.op_type == "LayerNormalization" and consumers.get(tensor, 0) == len(nodes)
                and tensor not in graph_outputs and all(i in inits for i in norm.input[1:3]) and len(norm.input) >= 2):
            for i in range(1, len(norm.input)):
                param = inits[norm.input[i]]
                param.CopyFrom(numpy_helper.from_array(
                    (numpy_helper.to_array(param) / scale).astype(np.float32), param.name))
            folded += 1
            continue
        smoothed = f"{tensor}_smoothed"
        inverse = f"{tensor}_smooth_inverse"
        graph.initializer.append(numpy_helper.from_array((1.0 / scale).astype(np.float32), inverse))
        for node in nodes:
            node.input[0] = smoothed
        first = min(i for i, n in enumerate(graph.node) if n.name in set(names))
        graph.node.insert(first, helper.make_node("Mul", [tensor, inverse], [smoothed],
                                                  name=f"{tensor}/SmoothQuant"))
        inserted += 1
    onnx.save(model, str(dst))
    return {"alpha": alpha, "matmul_inputs": len(stats.groups), "muls_inserted": inserted,
            "folded_into_layernorm": folded, "folded_into_mul": folded_mul, "samples": stats.samples}


def _fold_into_constant_mul(graph: Any, tensor: str, factor: np.ndarray, inits: dict[str, Any],
                            producer: dict[str, Any], consumers: dict[str, int], uses: int) -> bool:
    """Multiply ``tensor`` by ``factor`` (per last-axis channel) by scaling a constant of the Mul chain producing it.

    ``tensor`` must be consumed only by the smoothed MatMuls (``uses``); each Mul walked through must
    feed only the next one. The constant (a scalar or a last-axis vector) is copied, never edited in
    place: exporters share constants such as GELU's 0.5 between layers.
    """
    from onnx import numpy_helper

    if consumers.get(tensor, 0) != uses:
        return False
    node, depth = producer.get(tensor), 0
    while node is not None and node.op_type == "Mul" and depth < 4:
        for index, name in enumerate(node.input[:2]):
            if name in inits:
                const = numpy_helper.to_array(inits[name]).astype(np.float32)
                if const.size not in (1, factor.size) or (const.size > 1 and const.shape[-1] != factor.size):
                    return False
                new = numpy_helper.from_array((const.reshape(-1) * factor).astype(np.float32),
                                              f"{name}_smoothquant_{tensor}")
                graph.initializer.append(new)
                inits[new.name] = new
                node.input[index] = new.name
                return True
        # No constant here: walk into an operand that is itself a Mul feeding only this node.
        nxt = next((producer[i] for i in node.input[:2] if i in producer and producer[i].op_type == "Mul"
                    and consumers.get(i, 0) == 1), None)
        node, depth = nxt, depth + 1
    return False


# ---------------------------------------------------------------- measured choice between candidates
@dataclass
class Candidate:
    name: str
    path: Path
    info: dict[str, Any] = field(default_factory=dict)
    fidelity: float = float("nan")
    latency_ratio: float = float("nan")  # p50 / the first candidate's p50, median over rounds


def output_fidelity(reference: list[list[np.ndarray]], got: list[list[np.ndarray]]) -> float:
    """Mean cosine, per sample and output, between a candidate's outputs and the float model's.

    Cosine rather than an error norm because it is what an embedding contract checks and it is
    scale-free for logits too; taken on calibration samples only (never the plan's evaluation data).
    """
    values = []
    for ref_outs, outs in zip(reference, got, strict=True):
        for r, o in zip(ref_outs, outs, strict=True):
            a = np.asarray(r, dtype=np.float64).ravel()
            b = np.asarray(o, dtype=np.float64).ravel()
            denom = float(np.linalg.norm(a) * np.linalg.norm(b))
            values.append(1.0 if denom == 0 else float(a @ b) / denom)
    return float(np.mean(values)) if values else float("nan")


def _session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    # Spinning intra-op threads steal the cores from the next session timed (FIELD-NOTES, ORT timing).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_all(path: Path, batches: list[dict[str, np.ndarray]], threads: int) -> list[list[np.ndarray]]:
    session = _session(path, threads)
    return [list(session.run(None, b)) for b in batches]


def choose(float_path: Path, candidates: list[Candidate], batches: list[dict[str, np.ndarray]], threads: int,
           *, rounds: int = 5, calls: int = 8) -> Candidate:
    """Score every candidate's fidelity on ``batches`` and time them interleaved; return the chosen one.

    The best fidelity wins; candidates within :data:`FIDELITY_TIE` of it are equally good and the
    fastest of them (median over rounds of its p50 over the first candidate's) is taken instead.
    """
    import random
    import time

    logging.getLogger("onnxruntime").setLevel(logging.ERROR)
    reference = run_all(float_path, batches, threads)
    for cand in candidates:
        cand.fidelity = output_fidelity(reference, run_all(cand.path, batches, threads))
    if len(candidates) > 1:
        sessions = {c.name: _session(c.path, threads) for c in candidates}
        feed = batches[0]
        for s in sessions.values():
            for _ in range(3):
                s.run(None, feed)
        per_round: dict[str, list[float]] = {name: [] for name in sessions}
        order = list(sessions)
        rng = random.Random(0)
        for _ in range(rounds):
            rng.shuffle(order)
            for name in order:
                times = []
                for _ in range(calls):
                    t0 = time.perf_counter()
                    sessions[name].run(None, feed)
                    times.append(time.perf_counter() - t0)
                per_round[name].append(float(np.median(times)))
        first = np.asarray(per_round[candidates[0].name])
        for cand in candidates:
            cand.latency_ratio = float(np.median(np.asarray(per_round[cand.name]) / first))
    best = max(c.fidelity for c in candidates)
    tied = [c for c in candidates if c.fidelity >= best - FIDELITY_TIE]
    return min(tied, key=lambda c: (c.latency_ratio if np.isfinite(c.latency_ratio) else 1.0, -c.fidelity))
