"""The ``quantization.int8`` implementation of the ONNX Runtime backend: ``onnxruntime.quantization``.

An ONNX-stage step (the quantized graph reaches ``import_onnx``): static QDQ, per-channel, U8S8 for CNNs;
SmoothQuant + dynamic per-channel on the weight MatMuls for transformers (a measured choice of strength,
:mod:`.quantize_recipes`). Why these defaults: :mod:`.quantize_engine`. Layers go back to float in
groups ranked on ONNX Runtime itself (:func:`.quantize_engine.rank_sensitivity`), by the strategy's loop.

Another backend whose runtime runs ONNX QDQ graphs with int8 kernels can reuse this class: subclass it,
set ``backend`` to its name and register it (``docs/plugins.md``, "A target that quantizes").
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from edgecraft.errors import InputError
from edgecraft.models import ModelHandle, OnnxModel, Stage
from edgecraft.quantize import (
    Feeds,
    Int8Description,
    Int8Evidence,
    Int8Implementation,
    Int8Job,
    Int8Request,
    Int8Resolution,
    Int8Run,
)

if TYPE_CHECKING:
    from edgecraft.context import CompileContext

#: The target capability each mode needs: QDQ int8 graphs (static), MatMulInteger/ConvInteger (dynamic).
MODE_CAPABILITY = {"static": "onnx.int8.qdq", "dynamic": "onnx.int8.dynamic"}


class OrtInt8(Int8Implementation):
    backend: ClassVar[str] = "onnxruntime"
    stage: ClassVar[Stage] = Stage.ONNX
    #: QDQ graphs fuse into QLinearConv/QGemm at the saved (extended) optimization level;
    #: the session's ``int8_layers`` says per layer what ran.
    runs_qdq_graphs: ClassVar[bool] = True
    summary: ClassVar[str] = "onnxruntime.quantization: QDQ static (per-channel, U8S8), dynamic; SmoothQuant"

    # ------------------------------------------------------------------ compile time
    def resolve(self, request: Int8Request, ctx: CompileContext) -> Int8Resolution:
        from edgecraft.backends.onnxruntime.quantize_engine import cpu_has_vnni

        r = request
        notes: list[str] = []
        if r.mode == "weight_only":
            raise ctx.error("params.mode 'weight_only' is not available on ONNX Runtime: it has no int8 "
                            "weight-only kernels for Conv/MatMul, so the model would only be dequantized back "
                            "to float at load time",
                            hint="use mode 'dynamic' (int8 weights, activations quantized at run time) or "
                            "'static'; weight_only is supported on openvino-cpu (nncf.compress_weights)")
        transformer, hybrid = r.recipe == "transformer", r.recipe == "hybrid"
        if hybrid and r.mode not in ("auto", "static"):
            raise ctx.error(f"params.mode {r.mode!r} with recipe 'hybrid': the hybrid recipe quantizes the Convs "
                            "statically (QDQ) and the weight MatMuls dynamically, in one quantization",
                            hint="leave mode at 'auto' (or 'static'), or choose recipe 'cnn' or 'transformer'")
        if hybrid and not ctx.target.has(MODE_CAPABILITY["dynamic"]):
            raise ctx.error(f"recipe 'hybrid' needs capability {MODE_CAPABILITY['dynamic']!r} (dynamic int8 "
                            f"MatMuls), which target {ctx.target.target!r} does not declare",
                            hint="choose recipe 'cnn'")
        if r.mode == "auto" and r.recipe != "auto":
            r = dataclasses.replace(r, mode="dynamic" if transformer else "static")
            if hybrid:
                notes.append("hybrid recipe: static per-channel QDQ on the Convs (calibrated), dynamic per-channel "
                             "int8 on the weight MatMuls (per-call ranges, as the transformer recipe), Softmax, "
                             "LayerNorm and residual Adds in float; before it, exact float folds of constant "
                             "affines into Convs and hard-swish into HardSigmoid*x (PP-OCRv4 recognizer: 1.05x "
                             "with the transformer recipe's float Convs)")
            if transformer:
                notes.append("mode 'dynamic' (transformer recipe): per-call activation ranges fit LayerNorm "
                             "outputs that static ranges do not (MiniLM: cosine 0.9976 with SmoothQuant vs 0.94 "
                             "static on the weight MatMuls), at the same speed")
        cap = MODE_CAPABILITY["dynamic" if r.mode == "dynamic" else "static"]
        if not ctx.target.has(cap):
            raise ctx.error(f"params.mode {r.mode!r} needs capability {cap!r}, which target "
                            f"{ctx.target.target!r} does not declare")
        if transformer and r.smooth_alpha not in (None, 0.0) and r.calibration_dataset is None:
            raise ctx.error(f"params.smooth_alpha = {r.smooth_alpha} needs activation statistics: set "
                            "params.calibration_dataset", hint="or set smooth_alpha to 0 (no SmoothQuant)")
        if not transformer and r.smooth_alpha not in (None, 0.0):  # hybrid: no SmoothQuant on its MatMuls
            raise ctx.error("params.smooth_alpha applies to the transformer recipe only "
                            f"(recipe here: {r.recipe!r})", hint="set recipe: transformer, or drop smooth_alpha")
        arm = ctx.target.has("isa.aarch64") or platform.machine().lower() in ("aarch64", "arm64")
        if arm and r.mode == "dynamic" and not transformer:
            raise ctx.error(f"params.mode 'dynamic' on target {ctx.target.target!r} would quantize convolutions "
                            "as ConvInteger, which ONNX Runtime has no ARM kernel for (the board's session fails "
                            "with NOT_IMPLEMENTED at load, while the same file runs on x86)",
                            hint="use mode 'static' (QDQ: QLinearConv runs on ARM), or recipe 'transformer' "
                            "(dynamic int8 on MatMuls only: MatMulInteger has an ARM kernel)")
        needs: list[str] = []
        if r.mode in ("static", "auto"):
            needs.append(ctx.require_dataset(r.calibration_dataset, "static quantization calibration",
                                             param="calibration_dataset"))
        if r.mode != "dynamic":
            if r.activation_type == "auto" and arm:
                r = dataclasses.replace(r, activation_type="int8")
                notes.append("int8 activations x int8 weights: ARM int8 dot-product kernels favour symmetric "
                             "S8S8 (onnxruntime.quantization's guidance for ARM CPUs)")
            elif r.activation_type == "auto":
                r = dataclasses.replace(r, activation_type="uint8")
                notes.append("uint8 activations x int8 weights: x86 int8 kernels (VNNI vpdpbusd, AVX2 "
                             "vpmaddubsw) multiply unsigned by signed bytes; int8 activations measured slower")
        else:
            if r.activation_type == "int8":
                raise ctx.error("params.activation_type 'int8' is not available in dynamic mode: ONNX "
                                "Runtime's dynamic quantization computes activation ranges as uint8",
                                hint="leave activation_type at 'auto' (or 'uint8')")
            r = dataclasses.replace(r, activation_type="uint8")
            if r.calibration_dataset is not None:
                # Dynamic mode needs no calibration; the samples feed SmoothQuant and rank layers for the loop.
                needs.append(ctx.require_dataset(r.calibration_dataset, "SmoothQuant statistics and layer ranking",
                                                 param="calibration_dataset"))
            elif transformer and r.smooth_alpha is None:
                notes.append("no calibration_dataset: no SmoothQuant, plain dynamic per-channel int8 (MiniLM: "
                             "cosine 0.993 without, 0.9976 with)")
            if not transformer:
                notes.append("dynamic int8 (MatMulInteger/ConvInteger): wins on MatMul-heavy models; on CNNs "
                             "static QDQ is faster")
        if transformer:
            notes.append("transformer recipe: only weight MatMuls (and the embedding Gathers, for size) are "
                         "int8; Softmax, LayerNorm, residual Adds, the attention-mask path and Q·Kᵀ / attention·V "
                         "stay float; integer inputs are never quantized")
        if r.weight_type == "auto":
            r = dataclasses.replace(r, weight_type="int8")
        if r.reduce_range is None and arm:
            r = dataclasses.replace(r, reduce_range=False)
            notes.append("reduce_range off: ARM int8 kernels (SDOT/SMMLA, or NEON widening multiplies) accumulate "
                         "in int32 without the u8*s8 pair saturation of x86's vpmaddubsw")
        if r.reduce_range is None:
            vnni = cpu_has_vnni()
            r = dataclasses.replace(r, reduce_range=not vnni)
            notes.append("reduce_range off: this CPU has VNNI (int32 accumulation, no u8*s8 saturation)" if vnni
                         else "reduce_range on: no VNNI on this CPU, 7-bit weights avoid vpmaddubsw saturation")
        if r.mode == "static" and r.calibration_method == "entropy":
            notes.append("entropy calibration keeps histograms of every activation: slow on large models")
        return Int8Resolution(r, tuple(needs), tuple(notes))

    def describe(self, request: Int8Request, ctx: CompileContext) -> Int8Description:
        r = request
        pc = "per-channel" if r.per_channel else "per-tensor"
        types = f"{'U8' if r.activation_type == 'uint8' else 'S8'}{'S8' if r.weight_type == 'int8' else 'U8'}"
        if r.mode == "auto":
            return Int8Description(f"onnxruntime.quantization, recipe chosen from the exported graph ({pc}, "
                                   f"{types}) after quant_pre_process")
        if r.recipe == "hybrid":
            return Int8Description(f"onnxruntime.quantization, hybrid recipe: QDQ static on Convs ({pc}, {types}, "
                                   f"{r.calibration_method}) + dynamic on weight MatMuls ({pc}), after "
                                   "quant_pre_process and exact affine/hard-swish folds")
        if r.recipe == "transformer":
            smooth = ("" if r.calibration_dataset is None or r.smooth_alpha == 0 else
                      f" + SmoothQuant (alpha {r.smooth_alpha})" if r.smooth_alpha is not None else
                      " + SmoothQuant (strength measured on the calibration data)")
            fmt = "dynamic" if r.mode == "dynamic" else f"QDQ static, {r.calibration_method}"
            return Int8Description(f"onnxruntime.quantization {fmt} on weight MatMuls ({pc}, {types}) after "
                                   f"quant_pre_process{smooth}; transformer recipe")
        fmt = "QDQ static" if r.mode == "static" else "dynamic"
        method = f", {r.calibration_method}" if r.mode == "static" else ""
        return Int8Description(f"onnxruntime.quantization {fmt} ({pc}, {types}{method}) after quant_pre_process")

    # ------------------------------------------------------------------ run time
    def prepare(self, model: ModelHandle, request: Int8Request, run: Int8Run) -> OrtInt8Job:
        """Opset upgrade, ``quant_pre_process``, keep-float names, SmoothQuant choice: once per model."""
        from edgecraft.backends.onnxruntime import quantize_engine as eng

        if not isinstance(model, OnnxModel):
            raise InputError(f"{run.where}: ONNX Runtime quantizes ONNX graphs; got a {model.stage}-stage model")
        r = request
        transformer = r.recipe == "transformer"
        if r.mode == "auto":
            r = dataclasses.replace(r, mode="dynamic" if transformer else "static")
        out = run.work_dir
        calib = None
        if r.mode == "static" or (transformer and r.calibration_dataset is not None and r.smooth_alpha != 0):
            calib = run.calibration()
        source, opset_note = eng.upgrade_opset(model.path, out / "opset-upgraded.onnx")
        per_channel = r.per_channel
        if per_channel and eng.opset_of(source) < eng.MIN_QDQ_OPSET:
            per_channel = False
            opset_note = f"{opset_note}; fell back to per-tensor weights (per-channel QDQ needs opset 13)"
        run.status("quant_pre_process")
        pre, pre_note = eng.preprocess(source, out / "preprocessed.onnx")
        details: dict[str, Any] = {}
        hybrid = r.recipe == "hybrid"
        if hybrid:
            from edgecraft.backends.onnxruntime.graph_folding import simplify

            pre, details["float_folds"] = simplify(pre, out / "folded.onnx")
        keep = eng.match_keep_float(pre, list(r.keep_float_layers), list(r.keep_float_ops), run.where)
        op_types = None
        if transformer:
            op_types = ("MatMul", "Gather", "Attention") if r.mode == "dynamic" else ("MatMul", "Gemm")
        elif hybrid:
            op_types = ("Conv", "ConvTranspose")
        config = eng.OrtQuantConfig(mode=r.mode, per_channel=per_channel, calibration_method=r.calibration_method,
                                    percentile=r.percentile, activation_type=r.activation_type,
                                    weight_type=r.weight_type, reduce_range=bool(r.reduce_range), op_types=op_types)
        # The hybrid recipe's attention part: dynamic per-channel int8 on the weight MatMuls, after the Convs' QDQ.
        matmuls = dataclasses.replace(config, mode="dynamic", activation_type="uint8",
                                      op_types=("MatMul",)) if hybrid else None
        if transformer and calib is not None:
            pre = _smooth(r, run, pre, calib, config, keep, details)
        elif transformer:
            details["smoothquant"] = {"applied": False, "why": "smooth_alpha 0" if r.smooth_alpha == 0 else
                                      "no calibration_dataset"}
        details.update({"mode": r.mode, "per_channel": per_channel, "activation_type": r.activation_type,
                        "weight_type": r.weight_type, "reduce_range": r.reduce_range, "preprocessing": pre_note,
                        **({"opset": opset_note} if opset_note else {}),
                        "calibration_samples": 0 if calib is None else len(calib),
                        "calibration_method": r.calibration_method if r.mode == "static" else None,
                        "kept_float_by_params": keep})
        if matmuls is not None:
            details["recipe_parts"] = {"convolutional": "static QDQ on Conv/ConvTranspose",
                                       "attention": "dynamic int8 on weight MatMuls (MatMulConstBOnly)"}
        return OrtInt8Job(r, details, keep, model=model, run=run, pre=pre, config=config,
                          batches=calib if calib is not None and r.mode == "static" else [], second=matmuls)


class OrtInt8Job(Int8Job):
    """The pre-processed graph and the quantizer's config; re-quantizing reuses the calibration ranges."""

    def __init__(self, request: Int8Request, details: dict[str, Any], keep: list[str], *, model: OnnxModel,
                 run: Int8Run, pre: Path, config: Any, batches: list[Feeds], second: Any = None) -> None:
        super().__init__(request, details, keep)
        self._model, self._run, self._pre, self._config, self._batches = model, run, pre, config, batches
        self._second = second  # a second pass (the hybrid recipe's dynamic MatMuls) over the first's output
        self._keep = keep
        self._counter = itertools.count()
        self._cache = run.work_dir / "calibration-ranges.json"

    def _quantize_to(self, extra: Sequence[str]) -> Path:
        from edgecraft.backends.onnxruntime import quantize_engine as eng

        n = next(self._counter)
        path = self._run.work_dir / f"quantized-{n}.onnx"
        first = path if self._second is None else self._run.work_dir / f"quantized-{n}-convs.onnx"
        exclude = sorted({*self._keep, *extra})
        eng.quantize(self._pre, first, self._config, batches=self._batches, exclude=exclude,
                     calibration_cache=self._cache if self.request.mode == "static" else None)
        if self._second is not None:
            eng.quantize(first, path, self._second, batches=[], exclude=exclude)
        return path

    def build(self, keep_float: Sequence[str] = ()) -> OnnxModel:
        self._run.status(f"quantizing ({len(self._keep) + len(keep_float)} node(s) kept in float)")
        return OnnxModel(self._quantize_to(keep_float), self._model.io, self._run.lineage(self._model, self.request))

    def rank(self, samples: list[Feeds]) -> list[tuple[list[str], float]]:
        """One group per weight layer (with the producer and pass-through ops it needs in float), ranked by how
        much returning it alone to float reduces the output error on ONNX Runtime: one quantization per group."""
        from edgecraft.backends.onnxruntime import quantize_engine as eng

        self._run.status("ranking layers by sensitivity on onnxruntime")
        groups = eng.layer_groups(self._pre, set(self._keep))
        return eng.rank_sensitivity(self._pre, self._quantize_to, groups, samples, self._run.threads)

    def facts(self, model: ModelHandle) -> dict[str, Any]:
        from edgecraft.backends.onnxruntime import quantize_engine as eng

        assert isinstance(model, OnnxModel)
        facts = eng.graph_facts(self._model.path, model.path)
        if self.request.recipe in ("transformer", "hybrid"):
            facts["float_ops"] = eng.float_ops(model.path)
        return facts

    def evidence(self, model: ModelHandle) -> Int8Evidence:
        from edgecraft.backends.onnxruntime import quantize_engine as eng

        assert isinstance(model, OnnxModel)
        int8 = eng.int8_weight_layers(model.path)
        return Int8Evidence(int8, "weight layer with int8 weights", self._model.path.stat().st_size,
                            model.path.stat().st_size,
                            why_none=eng.why_no_int8(self._model.path, self._keep) if int8 == 0 else None)


def _smooth(r: Int8Request, run: Int8Run, pre: Path, calib: list[Feeds], config: Any, keep: list[str],
            details: dict[str, Any]) -> Path:
    """SmoothQuant the weight-MatMul inputs and return the graph to quantize (a measured choice).

    Candidates: the unsmoothed graph and SmoothQuant at each strength (``smooth_alpha`` if set, else
    :data:`.quantize_recipes.SMOOTH_CANDIDATES`), each quantized with ``config`` and scored on the
    calibration samples (output cosine to the float model) and timed interleaved on this CPU. The
    statistics are collected once: they do not depend on the strength.
    """
    from edgecraft.backends.onnxruntime import quantize_engine as eng
    from edgecraft.backends.onnxruntime import quantize_recipes as recipes

    out, threads = run.work_dir, run.threads
    run.status(f"SmoothQuant statistics on {len(calib)} calibration samples")
    stats = recipes.collect_smooth_stats(pre, calib, threads, exclude=set(keep))
    alphas = [r.smooth_alpha] if r.smooth_alpha is not None else list(recipes.SMOOTH_CANDIDATES)
    probe = calib[: min(len(calib), 32)]
    candidates: list[recipes.Candidate] = []
    sources: dict[str, Path] = {}
    if r.smooth_alpha is None:
        sources["no smoothing"] = pre
    for alpha in alphas:
        smoothed = out / f"smoothed-{alpha:g}.onnx"
        info = recipes.smooth_matmul_inputs(pre, smoothed, stats, float(alpha))
        sources[f"smoothquant {alpha:g}"] = smoothed
        candidates.append(recipes.Candidate(f"smoothquant {alpha:g}", out / f"candidate-{alpha:g}.onnx", info))
    if r.smooth_alpha is None:
        candidates.insert(0, recipes.Candidate("no smoothing", out / "candidate-none.onnx"))
    batches = calib if config.mode == "static" else []
    for cand in candidates:
        run.status(f"candidate {cand.name}")
        eng.quantize(sources[cand.name], cand.path, config, batches=batches, exclude=keep)
    run.status(f"choosing between {len(candidates)} candidate(s) on this CPU")
    chosen = recipes.choose(pre, candidates, probe, threads) if len(candidates) > 1 else candidates[0]
    details["smoothquant"] = {"applied": chosen.name != "no smoothing", **chosen.info}
    details["recipe_choice"] = {
        "chosen": chosen.name, "samples": len(probe), "tie_tolerance": recipes.FIDELITY_TIE,
        "rule": "best output cosine on calibration samples; among those within the tolerance, the fastest",
        "candidates": [{"name": c.name, "output_cosine": round(c.fidelity, 6),
                        "latency_vs_first": round(c.latency_ratio, 3) if math.isfinite(c.latency_ratio) else None}
                       for c in candidates]}
    return sources[chosen.name]
