"""The quantization step's default search space (``edgecraft search`` on a plan without ``search.space``).

Static vs dynamic int8 is the decision that matters most per target (static wins on CNNs, dynamic on
MatMul-heavy models; some runtimes have no dynamic mode, and the search drops choices a target cannot
compile), per-channel vs per-tensor scales trade accuracy for a little speed on some kernels.
"""

from __future__ import annotations

from typing import Any

from edgecraft.plugins.quantization.params import QuantizationParams
from edgecraft.strategy import StrategyParams


def default_space(params: StrategyParams) -> dict[str, dict[str, Any]]:
    assert isinstance(params, QuantizationParams)
    if params.mode == "qat":  # the trained int8 graph: on or off (switching modes would drop the training)
        return {"enabled": {"choices": [True, False]}}
    if params.mode in ("weight_only", "fp16"):  # one conversion (weight_only: size only): nothing else to trade
        return {"enabled": {"choices": [True, False]}}
    # A plan that leaves the mode to the recipe ('auto') keeps that choice too: trial 0 is the plan's own recipe.
    modes = ["auto", "static", "dynamic"] if params.mode == "auto" else ["static", "dynamic"]
    return {"enabled": {"choices": [True, False]},
            "params.mode": {"choices": modes},
            "params.per_channel": {"choices": [True, False]}}
