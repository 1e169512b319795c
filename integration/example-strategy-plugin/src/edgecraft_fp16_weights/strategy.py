"""The ``fp16-weights`` strategy: a graph-level step, for any target that imports ONNX graphs."""

from __future__ import annotations

from edgecraft.context import CompileContext, RunContext
from edgecraft.models import ModelHandle, OnnxModel, Stage
from edgecraft.strategy import Resolution, ResolvedStep, StepResult, Strategy, StrategyParams
from pydantic import Field


class Fp16WeightsParams(StrategyParams):
    """Which weights to store as float16."""

    min_elements: int = Field(16, ge=1, description="Initializers with fewer elements stay float32.")
    keep: list[str] = Field(default_factory=list, description="Initializer names to keep in float32.")


class Fp16WeightsStrategy(Strategy):
    name = "fp16-weights"
    params_model = Fp16WeightsParams
    summary = "store ONNX weights as float16 (about half the file), compute in float32"

    def resolve(self, params: Fp16WeightsParams, ctx: CompileContext) -> Resolution:
        # Every target runs ONNX-stage steps (the core imports the graph into the backend). This step asks
        # for more: 'onnx.graph' promises the artifact *is* the ONNX graph, so float16 storage ships as is;
        # a backend that compiles the graph (OpenVINO IR, TVM) would store its own weights instead.
        if not ctx.target.has("onnx.graph"):
            raise ctx.error("fp16-weights shrinks the ONNX file, but this target ships its own format, not the "
                            "ONNX graph (it lacks the 'onnx.graph' capability), so the artifact would not shrink",
                            hint="use it on a target whose artifact is the ONNX file (ort-cpu, onnx-reference)")
        saved = getattr(ctx.target.options, "saved_optimization", None)
        if saved not in (None, "disable"):
            raise ctx.error(f"the target saves its artifact through a graph optimizer (saved_optimization: {saved}) "
                            "that folds the float16 weights back to float32, so the file would not shrink",
                            hint="set the target option saved_optimization: disable")
        return Resolution(Stage.ONNX, "onnx-initializers-fp16+cast", params,
                          notes=["weights stored as float16; every op still computes in float32"])

    def apply(self, step: ResolvedStep, model: ModelHandle, ctx: RunContext) -> StepResult:
        from edgecraft_fp16_weights.convert import convert_weights_to_fp16

        assert isinstance(model, OnnxModel)
        out = ctx.step_dir() / "fp16_weights.onnx"
        report = convert_weights_to_fp16(model.path, out, min_elements=step.params["min_elements"],
                                         keep=frozenset(step.params["keep"]))
        details = {"converted": len(report.converted), "kept_small": report.kept_small,
                   "kept_overflow": report.kept_overflow, "weight_bytes_before": report.bytes_before,
                   "weight_bytes_after": report.bytes_after, "max_abs_rounding_error": report.max_abs_error}
        return StepResult(OnnxModel(out, model.io, [*model.lineage, {"fp16-weights": details}]), details)
