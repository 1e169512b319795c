"""int8 by PT2E with the XNNPACK quantizer: ``prepare_pt2e`` → calibrate → ``convert_pt2e`` on an exported graph.

The field's path for ExecuTorch (executorch 1.5.1 docs, "XNNPACK quantization"): the quantizer
(``executorch.backends.xnnpack.quantizer.xnnpack_quantizer.XNNPACKQuantizer``) annotates the exported graph
with XNNPACK's int8 scheme, symmetric int8 weights (per output channel by default) and int8 activations;
torchao's ``prepare_pt2e``/``convert_pt2e`` insert observers and then quantize/dequantize pairs, which the
XNNPACK partitioner later fuses into int8 kernels. The static scheme calibrates activations on data (the
quantizer's own observers: a histogram for activations, min/max for weights); the dynamic one computes
activation scales per call (Linear layers only: XNNPACK's dynamically quantized fully-connected kernels).
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from typing import Any

from edgecraft.backends.executorch.options import EXPORT_BATCH
from edgecraft.errors import InputError
from edgecraft.models import TorchModel
from edgecraft.quantize import Feeds


def quantizable_modules(module: Any) -> list[str]:
    """Names of the modules the XNNPACK quantizer gives int8 weights (Conv and Linear)."""
    from torch import nn

    return [n for n, m in module.named_modules() if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Linear) and n]


def keep_float_names(module: Any, patterns: list[str], where: str) -> list[str]:
    """Module names matched by ``keep_float_layers`` globs; a pattern matching nothing is an error."""
    names = [n for n, _ in module.named_modules() if n]
    kept: list[str] = []
    for pattern in patterns:
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            raise InputError(f"{where}: params.keep_float_layers pattern {pattern!r} matches no module of the "
                             f"torch model", hint=f"module names look like {quantizable_modules(module)[:6]}")
        kept.extend(h for h in hits if h not in kept)
    return kept


def quantize(model: TorchModel, *, per_channel: bool, dynamic: bool, keep_float: list[str],
             calibration: list[Feeds]) -> Any:
    """The converted (int8 QDQ) ``GraphModule`` of ``model`` exported at the program's batch."""
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e import allow_exported_model_train_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    example = tuple(model.example_inputs(batch=EXPORT_BATCH))
    with torch.no_grad():
        graph = torch.export.export(model.module.eval(), example).module()
    quantizer = XNNPACKQuantizer().set_global(
        get_symmetric_quantization_config(is_per_channel=per_channel, is_dynamic=dynamic))
    for name in keep_float:
        quantizer.set_module_name(name, None)  # None: this module's ops are not annotated, so they stay float
    prepared = prepare_pt2e(graph, quantizer)
    names = model.io.input_names
    with torch.no_grad():
        for feeds in calibration if not dynamic else calibration[:1]:
            prepared(*(torch.from_numpy(feeds[n]) for n in names))
        if dynamic and not calibration:
            prepared(*example)
    converted = convert_pt2e(prepared)
    # Steps and the builder call .eval() on torch models; an exported GraphModule refuses it unless allowed
    # (torchao's documented switch: it only toggles dropout/batchnorm, which the converted graph has folded).
    allow_exported_model_train_eval(converted)
    return converted


def int8_facts(graph_module: Any) -> dict[str, Any]:
    """What the converted graph holds: the quantize/dequantize nodes PT2E inserted, by kind."""
    ops: Counter[str] = Counter()
    for node in graph_module.graph.nodes:
        if node.op == "call_function":
            name = str(getattr(node.target, "__name__", node.target))
            if "quantize" in name or "choose_qparams" in name:
                ops[name.split(".")[0]] += 1
    return {"pt2e_qdq_nodes": dict(sorted(ops.items())), "int8_nodes": sum(ops.values())}
