"""The ``quantization.fp16`` implementation of the ONNX Runtime backend: ``ort-aarch64`` only (see :mod:`.fp16`).

Its own module because it reads the board (:mod:`.aarch64`), whose sessions read fp16 graphs (:mod:`.fp16`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from edgecraft.backends.onnxruntime.fp16 import X86_REASON, missing_fp16, to_fp16
from edgecraft.errors import InputError
from edgecraft.models import ModelHandle, OnnxModel, Stage
from edgecraft.precision import Fp16Implementation, Fp16Request, Fp16Resolution, Fp16Run

if TYPE_CHECKING:
    from edgecraft.context import CompileContext


class OrtFp16(Fp16Implementation):
    """fp16 on ``ort-aarch64``: ONNX Runtime's float16 converter, computed by the board's MLAS fp16 kernels."""

    backend: ClassVar[str] = "onnxruntime"
    stage: ClassVar[Stage] = Stage.ONNX
    summary: ClassVar[str] = "ONNX Runtime float16 converter; fp16 kernels on ARM boards with FEAT_FP16"

    def resolve(self, request: Fp16Request, ctx: CompileContext) -> Fp16Resolution:
        what = "float_precision 'fp16'" if request.int8_fallback else "mode 'fp16'"
        if not ctx.target.has("isa.aarch64"):
            raise ctx.error(f"{what} cannot run on target {ctx.target.label!r} ({ctx.target.target}): "
                            f"{X86_REASON}; edgecraft does not report fp16 where it does not run",
                            hint="use mode 'fp16' on ort-aarch64 or executorch-aarch64, and int8 (mode 'static') "
                                 "on this target")
        options = ctx.target.options
        impl = ("ONNX Runtime float16 converter (float32 I/O, after the portable "
                f"{getattr(options, 'saved_optimization', 'basic')} optimizations in fp32)")
        if getattr(options, "device", "emulated") != "emulated":
            return Fp16Resolution(impl, ("device: local: the board's fp16 arithmetic is checked when the session "
                                         "opens on the board (this host cannot read it)",))
        from edgecraft.backends.onnxruntime.aarch64 import OrtAarch64Options, board
        from edgecraft.boards import ARM_FP16_FEATURES, board_cpu_features

        assert isinstance(options, OrtAarch64Options)
        features = board_cpu_features(board(options))
        why = missing_fp16(features)
        if why:
            raise ctx.error(f"{what} cannot run on target {ctx.target.label!r}: {why}; edgecraft does not "
                            "report fp16 where it does not run", hint="remove the fp16 step for this board, or use "
                            "int8 (mode 'static')")
        have = ", ".join(f for f in ARM_FP16_FEATURES if features.get(f))
        return Fp16Resolution(impl, (f"the board's CPU has fp16 arithmetic ({have}, read on the board)",))

    def convert(self, model: ModelHandle, request: Fp16Request, run: Fp16Run) -> tuple[ModelHandle, dict[str, Any]]:
        import shutil

        import onnxruntime as ort

        if not isinstance(model, OnnxModel):
            raise InputError(f"{run.where}: the fp16 conversion works on the ONNX graph; got a {model.stage} model")
        level = getattr(run.options, "saved_optimization", "basic")
        optimized = run.work_dir / "model.fp32.onnx"
        if level == "disable":
            shutil.copyfile(model.path, optimized)
        else:
            so = ort.SessionOptions()
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
            so.optimized_model_filepath = str(optimized)
            ort.InferenceSession(str(model.path), so, providers=["CPUExecutionProvider"])
        out = run.work_dir / "model.fp16.onnx"
        details = to_fp16(optimized, out, keep_layers=request.keep_float_layers, keep_ops=request.keep_float_ops,
                          int8_fallback=request.int8_fallback, where=run.where)
        details["optimized_before_conversion"] = level
        return OnnxModel(out, model.io, list(model.lineage)), details
