"""fp16 on ExecuTorch (the ``quantization`` step's ``mode: fp16``): a half-precision torch module, lowered to XNNPACK.

A torch-stage step: the module's float weights become float16 (``module.half()`` on a copy: the memoized fp32
model stays the baseline's) and :func:`.lower.lower` exports it with half example inputs, so XNNPACK's partitioner
takes the fp16 convolutions and linears and runs its fp16 kernels. Those need fp16 arithmetic (ARM FEAT_FP16, x86
AVX512-FP16): on a CPU without it the step is refused at compile time (the board's features are read on the board
for ``executorch-aarch64``). What runs in fp16 is read from the lowered program (the delegated compute ops by dtype,
``delegated_compute_by_dtype``) and, on the board, from the dtype the outputs come back in.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, ClassVar

from edgecraft.backends.executorch.options import INSTALL_HINT, executorch_installed, missing_fp16
from edgecraft.errors import InputError
from edgecraft.models import ModelHandle, Stage, TorchModel
from edgecraft.precision import Fp16Implementation, Fp16Request, Fp16Resolution, Fp16Run

if TYPE_CHECKING:
    from edgecraft.context import CompileContext

AARCH64 = "executorch-aarch64"


class EtFp16(Fp16Implementation):
    backend: ClassVar[str] = "executorch"
    stage: ClassVar[Stage] = Stage.TORCH
    summary: ClassVar[str] = "half-precision torch module lowered to XNNPACK's fp16 kernels"

    def resolve(self, request: Fp16Request, ctx: CompileContext) -> Fp16Resolution:
        if not executorch_installed():
            raise ctx.error("fp16 on ExecuTorch lowers to XNNPACK, which is not installed", hint=INSTALL_HINT)
        if request.int8_fallback:
            raise ctx.error("params.float_precision 'fp16' (int8 with fp16 fallback layers) is not built on "
                            "ExecuTorch: PT2E leaves the layers it does not quantize in float32, and edgecraft does "
                            "not convert them to half inside a quantized program",
                            hint="remove params.float_precision, or use ort-aarch64 for int8 with fp16 fallback layers")
        if request.keep_float_ops or request.keep_float_layers:
            raise ctx.error("params.keep_float_layers/keep_float_ops: on ExecuTorch mode 'fp16' converts the whole "
                            "module to half precision (a float32 island would need casts the export does not add)",
                            hint="remove keep_float_layers and keep_float_ops, or use an ort-aarch64 target")
        later = ctx.plan.steps[ctx.step_index + 1:]
        if later:
            raise ctx.error(f"mode 'fp16' must be the last step on ExecuTorch targets (the torch steps after it, "
                            f"{', '.join(s.label for s in later)}, would train or quantize a half-precision module)",
                            hint="move the fp16 step last")
        features = None
        if ctx.target.target == AARCH64:
            from edgecraft.backends.executorch.options import ExecutorchAarch64Options

            assert isinstance(ctx.target.options, ExecutorchAarch64Options)
            if ctx.target.options.device == "local":
                return Fp16Resolution("torch module.half() lowered to XNNPACK fp16 kernels",
                                      ("the board's fp16 arithmetic is checked on its node when the program is "
                                       "loaded (device: local: this compiling host is not the board)",))
            from edgecraft.backends.executorch.board import board
            from edgecraft.boards import board_cpu_features

            features = board_cpu_features(board(ctx.target.options))
        why = missing_fp16(features)
        if why:
            raise ctx.error(f"mode 'fp16' cannot run on target {ctx.target.label!r}: {why}; edgecraft does not report "
                            "fp16 where it does not run", hint="use mode 'fp16' on a target whose CPU has fp16 "
                            "arithmetic (executorch-aarch64 on the Cortex-A76 board, ort-aarch64), or int8 here")
        where = "read on the board" if features is not None else "this host's CPU flags"
        return Fp16Resolution("torch module.half() lowered to XNNPACK fp16 kernels",
                              (f"the CPU has fp16 arithmetic ({where})",))

    def convert(self, model: ModelHandle, request: Fp16Request, run: Fp16Run) -> tuple[ModelHandle, dict[str, Any]]:
        if not isinstance(model, TorchModel):
            raise InputError(f"{run.where}: the fp16 conversion on ExecuTorch works on the torch module; got a "
                             f"{model.stage}-stage model")
        half = copy.deepcopy(model.module).half()  # a copy: the caller's model (memoized, shared) stays fp32
        converted = sum(1 for t in half.parameters() if t.is_floating_point())
        return model.with_module(half), {"tensors_converted": converted}
