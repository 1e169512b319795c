"""The ``quantization`` strategy: one plan step, compiled to the right INT8 method for each target.

* ``ort-cpu`` (capabilities ``onnx.int8.qdq`` / ``onnx.int8.dynamic``): an ONNX-stage step using
  ``onnxruntime.quantization`` (see :mod:`.ort_engine` for the defaults and why).
* ``openvino-cpu`` (``openvino.nncf``): a native-stage step on the ``openvino.Model`` using NNCF;
  ``nncf.quantize_with_accuracy_control`` when the plan has an accuracy contract for the target.
* Anything else, TVM included, is a compile-time error that says why: edgecraft never reports int8
  where none runs.

Targets are chosen by capability tags only, never by name: a new backend whose artifact runs ONNX QDQ
graphs declares ``onnx.int8.qdq`` (and ``onnx.int8.dynamic`` if it runs MatMulInteger/ConvInteger)
and gets the ONNX Runtime path; one built on OpenVINO declares ``openvino.nncf`` with
``native_format="openvino"`` and gets NNCF. No edit here is needed (docs/plugins.md, "A target that
quantizes").
"""

from __future__ import annotations

import importlib.util
import itertools
import platform
from pathlib import Path
from typing import Any, ClassVar

from edgecraft.context import CompileContext, RunContext, TargetView
from edgecraft.errors import InputError
from edgecraft.models import ModelHandle, NativeModel, OnnxModel, Stage
from edgecraft.plugins.quantization.params import QuantizationParams
from edgecraft.strategy import Resolution, ResolvedStep, StepResult, Strategy, StrategyParams

ORT_CAPS = ("onnx.int8.qdq", "onnx.int8.dynamic")
OV_CAP = "openvino.nncf"
#: What a target declaring OV_CAP must hand native-stage steps: an ``openvino.Model``.
OV_NATIVE_FORMAT = "openvino"

TVM_MESSAGE = (
    "quantization cannot run on this target: as of TVM 0.27 an ONNX QDQ graph imports but computes in "
    "fp32 (no int8 kernel runs, so nothing would be faster), and QOperator ops (QLinearConv, QGemm, "
    "ConvInteger) are not implemented in its ONNX frontend; edgecraft does not report int8 where none runs")


def _no_int8_message(target: TargetView) -> str:
    if target.backend_name == "tvm" or target.target.startswith("tvm"):
        return TVM_MESSAGE
    return (f"quantization cannot run on this target: target {target.target!r} (backend "
            f"{target.backend_name!r}) declares no int8 capability edgecraft can compile to "
            f"(one of {[*ORT_CAPS, OV_CAP]})")


class QuantizationStrategy(Strategy):
    name: ClassVar[str] = "quantization"
    params_model: ClassVar[type[StrategyParams]] = QuantizationParams
    summary: ClassVar[str] = ("INT8 post-training quantization per target: ONNX Runtime QDQ (per-channel, "
                              "U8S8), NNCF on OpenVINO; accuracy-aware")

    # ------------------------------------------------------------------ compile time
    @classmethod
    def default_space(cls, params: StrategyParams) -> dict[str, dict[str, Any]]:
        """What `edgecraft search` explores for this step when the plan names no space (see space.py)."""
        from edgecraft.plugins.quantization.space import default_space

        return default_space(params)

    def resolve(self, params: StrategyParams, ctx: CompileContext) -> Resolution:
        assert isinstance(params, QuantizationParams)
        p = params.model_copy(deep=True)
        target = ctx.target
        if any(target.has(c) for c in ORT_CAPS):
            return self._resolve_ort(p, ctx)
        if target.has(OV_CAP):
            if target.info.native_format != OV_NATIVE_FORMAT:
                # NNCF works on the backend's in-memory model, which must be an openvino.Model.
                raise ctx.error(f"target {target.target!r} declares {OV_CAP!r} but its native_format is "
                                f"{target.info.native_format!r}; NNCF quantizes an in-memory openvino.Model "
                                f"(native_format {OV_NATIVE_FORMAT!r})",
                                hint="a backend declaring openvino.nncf must set native_format='openvino' and "
                                     "hand native-stage steps an openvino.Model from import_onnx")
            return self._resolve_ov(p, ctx)
        raise ctx.error(_no_int8_message(target),
                        hint="quantize for ort-cpu or openvino-cpu, or keep this target in a plan without "
                        "the quantization step")

    def _resolve_accuracy(self, p: QuantizationParams, ctx: CompileContext, notes: list[str]) -> bool:
        has_contract = ctx.has_accuracy_contract()
        if p.accuracy_aware.enabled == "on" and not has_contract:
            raise ctx.error("params.accuracy_aware.enabled is 'on' but the plan has no accuracy contract for "
                            "this target, so there is no drop to aim for",
                            hint="add an accuracy contract, or set accuracy_aware.enabled to 'auto' or 'off'")
        active = p.accuracy_aware.enabled == "on" or (p.accuracy_aware.enabled == "auto" and has_contract)
        if active:
            from edgecraft.plugins.quantization.accuracy import accuracy_contracts

            for contract in accuracy_contracts(ctx.plan, ctx.target.label):
                if contract.metric not in ctx.plan.evaluation.metrics:
                    raise ctx.error(f"the accuracy contract uses metric {contract.metric!r}, which "
                                    f"evaluation.metrics ({ctx.plan.evaluation.metrics}) does not compute",
                                    hint=f"add {contract.metric!r} to evaluation.metrics")
            notes.append(f"accuracy-aware: up to {p.accuracy_aware.max_evaluations} evaluations on the target, "
                         f"{p.accuracy_aware.group_size} layer(s) returned to float per step")
        p.accuracy_aware.enabled = "on" if active else "off"
        return active

    def _resolve_ort(self, p: QuantizationParams, ctx: CompileContext) -> Resolution:
        from edgecraft.plugins.quantization.ort_engine import cpu_has_vnni

        notes: list[str] = []
        if p.mode == "weight_only":
            raise ctx.error("params.mode 'weight_only' is not available on ONNX Runtime: it has no int8 "
                            "weight-only kernels for Conv/MatMul, so the model would only be dequantized back "
                            "to float at load time",
                            hint="use mode 'dynamic' (int8 weights, activations quantized at run time) or "
                            "'static'; weight_only is supported on openvino-cpu (nncf.compress_weights)")
        cap = "onnx.int8.qdq" if p.mode == "static" else "onnx.int8.dynamic"
        if not ctx.target.has(cap):
            raise ctx.error(f"params.mode {p.mode!r} needs capability {cap!r}, which target "
                            f"{ctx.target.target!r} does not declare")
        needs: list[str] = []
        if p.mode == "static":
            needs.append(ctx.require_dataset(p.calibration_dataset, "static quantization calibration",
                                             param="calibration_dataset"))
            if p.activation_type == "auto" and platform.machine().lower() in ("aarch64", "arm64"):
                p.activation_type = "int8"
                notes.append("int8 activations x int8 weights: ARM int8 dot-product kernels favour symmetric "
                             "S8S8 (onnxruntime.quantization's guidance for ARM CPUs)")
            elif p.activation_type == "auto":
                p.activation_type = "uint8"
                notes.append("uint8 activations x int8 weights: x86 int8 kernels (VNNI vpdpbusd, AVX2 "
                             "vpmaddubsw) multiply unsigned by signed bytes; int8 activations measured slower")
        else:
            if p.activation_type == "int8":
                raise ctx.error("params.activation_type 'int8' is not available in dynamic mode: ONNX "
                                "Runtime's dynamic quantization computes activation ranges as uint8",
                                hint="leave activation_type at 'auto' (or 'uint8')")
            p.activation_type = "uint8"
            if p.calibration_dataset is not None:
                # Dynamic mode needs no calibration; the samples only rank layers for the accuracy loop.
                needs.append(ctx.require_dataset(p.calibration_dataset, "layer ranking",
                                                 param="calibration_dataset"))
            notes.append("dynamic int8 (MatMulInteger/ConvInteger): wins on MatMul-heavy models; on CNNs "
                         "static QDQ is faster")
        if p.weight_type == "auto":
            p.weight_type = "int8"
        if p.reduce_range is None:
            vnni = cpu_has_vnni()
            p.reduce_range = not vnni
            notes.append("reduce_range off: this CPU has VNNI (int32 accumulation, no u8*s8 saturation)" if vnni
                         else "reduce_range on: no VNNI on this CPU, 7-bit weights avoid vpmaddubsw saturation")
        if p.mode == "static" and p.calibration_method == "entropy":
            notes.append("entropy calibration keeps histograms of every activation: slow on large models")
        self._resolve_accuracy(p, ctx, notes)
        fmt = "QDQ static" if p.mode == "static" else "dynamic"
        pc = "per-channel" if p.per_channel else "per-tensor"
        types = f"{'U8' if p.activation_type == 'uint8' else 'S8'}{'S8' if p.weight_type == 'int8' else 'U8'}"
        method = f", {p.calibration_method}" if p.mode == "static" else ""
        impl = f"onnxruntime.quantization {fmt} ({pc}, {types}{method}) after quant_pre_process"
        return Resolution(stage=Stage.ONNX, implementation=impl, params=p, needs_data=needs, notes=notes)

    def _resolve_ov(self, p: QuantizationParams, ctx: CompileContext) -> Resolution:
        notes: list[str] = []
        if importlib.util.find_spec("nncf") is None:
            raise ctx.error("quantization on OpenVINO uses NNCF, which is not installed",
                            hint="pip install 'edgecraft[openvino]'  (installs openvino and nncf)")
        if p.mode == "dynamic":
            raise ctx.error("params.mode 'dynamic' is not available on OpenVINO: NNCF quantizes activations "
                            "statically (from calibration data) or compresses weights only",
                            hint="use mode 'static' (int8 compute) or 'weight_only' (int8 weights, float compute)")
        if p.calibration_method == "entropy":
            raise ctx.error("params.calibration_method 'entropy' is not available in NNCF",
                            hint="use 'minmax' or 'percentile' (NNCF's quantile range estimator)")
        if p.activation_type != "auto":
            raise ctx.error(f"params.activation_type {p.activation_type!r} cannot be forced on OpenVINO: NNCF "
                            "picks u8 or i8 per activation (u8 after ReLU)", hint="leave activation_type at 'auto'")
        if p.weight_type == "uint8":
            raise ctx.error("params.weight_type 'uint8' is not available on OpenVINO: NNCF's CPU preset uses "
                            "symmetric int8 weights", hint="leave weight_type at 'auto' (or 'int8')")
        p.weight_type = "int8"
        if p.reduce_range is not None:
            notes.append("reduce_range is an ONNX Runtime option; ignored by NNCF")
        needs: list[str] = []
        if p.mode == "weight_only":
            if p.accuracy_aware.enabled == "on":
                raise ctx.error("accuracy_aware needs int8 compute to restore; weight_only keeps compute in "
                                "float (set accuracy_aware.enabled to 'off' or use mode 'static')")
            p.accuracy_aware.enabled = "off"
            notes.append("weight_only: int8 weights, float compute: a smaller artifact, not a faster one")
            return Resolution(stage=Stage.NATIVE, implementation="nncf.compress_weights (INT8_ASYM)", params=p,
                              notes=notes)
        needs.append(ctx.require_dataset(p.calibration_dataset, "static quantization calibration",
                                         param="calibration_dataset"))
        active = self._resolve_accuracy(p, ctx, notes)
        if active:
            from edgecraft.plugins.quantization.accuracy import accuracy_contracts

            if len(accuracy_contracts(ctx.plan, ctx.target.label)) > 1:
                notes.append("several accuracy contracts: NNCF aims at the tightest; all are checked afterwards")
        impl = "nncf.quantize_with_accuracy_control" if active else "nncf.quantize"
        pc = "per-channel" if p.per_channel else "per-tensor"
        return Resolution(stage=Stage.NATIVE, implementation=f"{impl} ({pc}, {p.calibration_method})", params=p,
                          needs_data=needs, notes=notes)

    # ------------------------------------------------------------------ run time
    def apply(self, step: ResolvedStep, model: ModelHandle, ctx: RunContext) -> StepResult:
        params = QuantizationParams.model_validate(step.params)
        if isinstance(model, OnnxModel):
            return self._apply_ort(params, model, ctx)
        if isinstance(model, NativeModel):
            return self._apply_ov(params, model, ctx)
        raise InputError(f"{step.where}: quantization got a {model.stage}-stage model; it works on ONNX graphs "
                         "and OpenVINO models")

    def _where(self, ctx: RunContext) -> str:
        return f"{ctx.step.where} on target {ctx.target.label!r}"

    def _apply_ort(self, p: QuantizationParams, model: OnnxModel, ctx: RunContext) -> StepResult:
        from edgecraft.plugins.quantization import ort_engine as eng
        from edgecraft.plugins.quantization.calibration import calibration_feeds

        where = self._where(ctx)
        out = ctx.step_dir()
        active = p.accuracy_aware.enabled == "on"
        calib = rank = None
        if p.mode == "static":
            assert p.calibration_dataset is not None
            calib = calibration_feeds(ctx, p.calibration_dataset, p.calibration_samples)
            rank = calib[: p.accuracy_aware.ranking_samples]
        elif active:
            name = p.calibration_dataset or ctx.plan.evaluation.dataset
            assert name is not None
            rank = calibration_feeds(ctx, name, p.accuracy_aware.ranking_samples)
        source, opset_note = eng.upgrade_opset(model.path, out / "opset-upgraded.onnx")
        per_channel = p.per_channel
        if per_channel and eng.opset_of(source) < eng.MIN_QDQ_OPSET:
            per_channel = False
            opset_note = f"{opset_note}; fell back to per-tensor weights (per-channel QDQ needs opset 13)"
        ctx.progress.status(f"{ctx.step.where}: quant_pre_process")
        pre, pre_note = eng.preprocess(source, out / "preprocessed.onnx")
        keep = eng.match_keep_float(pre, p.keep_float_layers, p.keep_float_ops, where)
        config = eng.OrtQuantConfig(mode=p.mode, per_channel=per_channel, calibration_method=p.calibration_method,
                                    percentile=p.percentile, activation_type=p.activation_type,
                                    weight_type=p.weight_type, reduce_range=bool(p.reduce_range))
        batches = calib if calib is not None else []
        counter = itertools.count()
        cache = out / "calibration-ranges.json"

        def quantize_to(extra: list[str]) -> Path:
            path = out / f"quantized-{next(counter)}.onnx"
            eng.quantize(pre, path, config, batches=batches,
                         exclude=sorted({*keep, *extra}), calibration_cache=cache if p.mode == "static" else None)
            return path

        def build(extra: list[str]) -> OnnxModel:
            ctx.progress.status(f"{ctx.step.where}: quantizing ({len(keep) + len(extra)} node(s) kept in float)")
            return OnnxModel(quantize_to(extra), model.io,
                             [*model.lineage, {"step": ctx.step.label, "quantization": step_summary(p)}])

        details: dict[str, Any] = {"mode": p.mode, "per_channel": per_channel,
                                   "activation_type": p.activation_type, "weight_type": p.weight_type,
                                   "reduce_range": p.reduce_range, "preprocessing": pre_note,
                                   **({"opset": opset_note} if opset_note else {}),
                                   "calibration_samples": 0 if calib is None else len(calib),
                                   "calibration_method": p.calibration_method if p.mode == "static" else None,
                                   "kept_float_by_params": keep}
        result_model = build([])
        if active:
            result_model = self._restore_ort(p, ctx, pre, result_model, build, quantize_to, rank, keep, details)
        else:
            details["kept_float"] = keep
        details.update(graph_facts(model.path, result_model.path))
        return StepResult(result_model, details)

    def _restore_ort(self, p: QuantizationParams, ctx: RunContext, pre: Path, first: OnnxModel, build: Any,
                     quantize_to: Any, rank: Any, keep: list[str], details: dict[str, Any]) -> OnnxModel:
        from edgecraft.plugins.quantization import ort_engine as eng
        from edgecraft.plugins.quantization.accuracy import accuracy_contracts, restore_until_met

        assert ctx.baseline_metrics is not None
        baseline = ctx.baseline_metrics()
        contracts = accuracy_contracts(ctx.plan, ctx.target.label)
        ranking: list[tuple[list[str], float]] = []

        def rank_groups() -> list[list[str]]:
            # Only when the fully quantized model misses the contract: one quantization per group.
            ctx.progress.status(f"{ctx.step.where}: ranking layers by sensitivity on onnxruntime")
            groups = eng.layer_groups(pre, set(keep))
            ranking.extend(eng.rank_sensitivity(pre, quantize_to, groups, rank, ctx.plan.latency.threads))
            return [group for group, _ in ranking]

        loop = restore_until_met(quantize=build, evaluate=ctx.evaluate, baseline=baseline, contracts=contracts,
                                 ranking=rank_groups, group_size=p.accuracy_aware.group_size,
                                 budget=p.accuracy_aware.max_evaluations, first=first, status=ctx.progress.status)
        details["accuracy_aware"] = {
            "baseline": baseline, "contract_met": loop.contract_met, "evaluations": loop.evaluations,
            "budget": p.accuracy_aware.max_evaluations, "stopped": loop.stopped, "steps": loop.history,
            "sensitivity_top": [{"layer": g[0], "group": g, "output_error_reduction": round(s, 5)}
                                for g, s in ranking[:10]]}
        details["kept_float"] = sorted({*keep, *loop.kept_float})
        return loop.model

    def _apply_ov(self, p: QuantizationParams, model: NativeModel, ctx: RunContext) -> StepResult:
        from edgecraft.plugins.quantization import ov_engine as eng
        from edgecraft.plugins.quantization.calibration import calibration_feeds

        where = self._where(ctx)
        scope = eng.ignored_scope(model.model, p.keep_float_layers, p.keep_float_ops, where)
        details: dict[str, Any] = {"mode": p.mode, "per_channel": p.per_channel,
                                   "kept_float_by_params": {"layers": p.keep_float_layers,
                                                            "ops": p.keep_float_ops}}
        lineage = [*model.lineage, {"step": ctx.step.label, "quantization": step_summary(p)}]
        if p.mode == "weight_only":
            ctx.progress.status(f"{ctx.step.where}: nncf.compress_weights")
            quantized = eng.compress_weights(model.model, scope)
            details.update(ov_facts(quantized))
            return StepResult(NativeModel(quantized, model.format, model.io, lineage), details)
        assert p.calibration_dataset is not None
        calib = calibration_feeds(ctx, p.calibration_dataset, p.calibration_samples)
        details.update(calibration_samples=len(calib), calibration_method=p.calibration_method)
        if p.accuracy_aware.enabled != "on":
            ctx.progress.status(f"{ctx.step.where}: nncf.quantize")
            quantized = eng.quantize(model.model, calib, per_channel=p.per_channel,
                                     calibration_method=p.calibration_method, scope=scope)
            details["kept_float"] = p.keep_float_layers
            details.update(ov_facts(quantized))
            return StepResult(NativeModel(quantized, model.format, model.io, lineage), details)
        quantized = self._accuracy_control_ov(p, model, ctx, calib, scope, details)
        details.update(ov_facts(quantized))
        return StepResult(NativeModel(quantized, model.format, model.io, lineage), details)

    def _accuracy_control_ov(self, p: QuantizationParams, model: NativeModel, ctx: RunContext, calib: Any,
                             scope: Any, details: dict[str, Any]) -> Any:
        import numpy as np
        from edgecraft.metrics import BUILTIN_METRICS
        from edgecraft.plugins.quantization import ov_engine as eng
        from edgecraft.plugins.quantization.accuracy import accuracy_contracts, contracts_hold

        assert ctx.baseline_metrics is not None and ctx.plan.evaluation.dataset is not None
        baseline = ctx.baseline_metrics()
        contracts = accuracy_contracts(ctx.plan, ctx.target.label)
        tight = min(contracts, key=lambda c: c.max_drop)
        metric = next((m for m in BUILTIN_METRICS if m.name == tight.metric), None)
        if metric is None:
            raise InputError(f"{self._where(ctx)}: NNCF's accuracy control needs a built-in metric; "
                             f"{tight.metric!r} is not one", hint="use top1, top5, agreement or cosine")
        data = ctx.feeds(ctx.plan.evaluation.dataset)
        items = [data.feeds(slice(i, i + 1)) for i in range(len(data))]
        output_index = ctx.io.output_index(ctx.plan.evaluation.output)
        reference = None
        if metric.needs_reference:
            reference = _reference_outputs(model.model, items, output_index, ctx.plan.latency.threads)

        def score(outputs: np.ndarray, indices: np.ndarray) -> float:
            labels = None if data.labels is None else data.labels[indices]
            ref = None if reference is None else reference[indices]
            return float(metric.compute(outputs, labels, ref))

        # NNCF bounds the drop against *its input* (the float model as it stands after earlier steps),
        # while the contract bounds the drop against the plan's baseline. Earlier steps (pruning,
        # factorization) may already have spent part of the budget: NNCF gets only what is left.
        float_now = ctx.evaluate(model)
        budget = _remaining_budget(tight, baseline[tight.metric], float_now[tight.metric], metric.higher_is_better)
        details["accuracy_budget"] = {"contract_max_drop": tight.max_drop, "float_input": float_now[tight.metric],
                                      "baseline": baseline[tight.metric], "left_for_quantization": budget}
        ctx.progress.status(f"{ctx.step.where}: nncf.quantize_with_accuracy_control (max drop {budget:.4g})")
        result = eng.quantize_with_accuracy_control(
            model.model, calib, eval_items=items, output_index=output_index, metric_fn=score, max_drop=budget,
            relative=tight.relative, per_channel=p.per_channel, calibration_method=p.calibration_method,
            scope=scope, max_iterations=max(1, p.accuracy_aware.max_evaluations - 1),
            ranking_samples=p.accuracy_aware.ranking_samples)
        # NNCF validated in f32; confirm on the target exactly as configured (and as the report will measure).
        final = ctx.evaluate(NativeModel(result.model, model.format, model.io))
        met, drops = contracts_hold(contracts, baseline, final)
        steps: list[dict[str, Any]] = []
        vals = result.validations
        if len(vals) >= 2:
            steps.append({"step": 0, "kept_float": [], tight.metric: vals[1]["value"]})
        kept: list[str] = []
        for i, group in enumerate(result.reverted_steps, start=1):
            kept = [*kept, *group]
            entry: dict[str, Any] = {"step": i, "returned_to_float": group, "kept_float": list(kept)}
            if i + 1 < len(vals):
                entry[tight.metric] = vals[i + 1]["value"]
            steps.append(entry)
        details["accuracy_aware"] = {
            "baseline": baseline, "nncf_initial": vals[0]["value"] if vals else None,
            "contract_met": met, "final_metrics": final, "drop": drops,
            "evaluations": max(len(vals) - 1, 0) + 1, "budget": p.accuracy_aware.max_evaluations,
            "steps": steps, "nncf_messages": [m for m in result.messages if "ccuracy" in m][-6:]}
        details["kept_float"] = sorted({*p.keep_float_layers, *result.reverted_final})
        return result.model


def _remaining_budget(contract: Any, baseline: float, current: float, higher_is_better: bool) -> float:
    """The drop a step may still cause, in the contract's terms but measured from ``current``.

    ``contract.max_drop`` is measured from the baseline; what earlier steps already lost is
    subtracted. Relative contracts are re-expressed relative to ``current``.
    """
    spent = (baseline - current) if higher_is_better else (current - baseline)
    if contract.relative:
        allowed_abs = contract.max_drop * abs(baseline)
        return max(0.0, (allowed_abs - spent) / max(abs(current), 1e-12))
    return max(0.0, contract.max_drop - spent)


def _reference_outputs(model: Any, items: list[Any], output_index: int, threads: int) -> Any:
    """The float model's outputs on OpenVINO f32, the reference agreement/cosine metrics compare to."""
    import numpy as np
    import openvino as ov

    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                      "INFERENCE_NUM_THREADS": threads})
    port = compiled.outputs[output_index]
    return np.concatenate([np.asarray(compiled(item)[port]) for item in items], axis=0)


def step_summary(p: QuantizationParams) -> str:
    return f"int8 {p.mode}, {'per-channel' if p.per_channel else 'per-tensor'}"


def graph_facts(before: Path, after: Path) -> dict[str, Any]:
    """Sizes and what the quantized ONNX graph holds (so the report shows int8 really is there)."""
    import onnx

    graph = onnx.load(str(after), load_external_data=False).graph
    ops: dict[str, int] = {}
    for node in graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    int8_weights = sum(1 for t in graph.initializer if t.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
                       and len(t.dims) > 1)
    return {"onnx_bytes_before": before.stat().st_size, "onnx_bytes_after": after.stat().st_size,
            "int8_weight_tensors": int8_weights,
            "quantize_ops": {k: v for k, v in sorted(ops.items()) if k in (
                "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger")}}


def ov_facts(model: Any) -> dict[str, Any]:
    ops: dict[str, int] = {}
    for op in model.get_ordered_ops():
        name = op.get_type_name()
        if name in ("FakeQuantize", "Convert"):
            ops[name] = ops.get(name, 0) + 1
    return {"openvino_ops": ops}
