"""The pruning step's default search space (``edgecraft search`` on a plan without ``search.space``).

Structured pruning trades accuracy for real speed and size through its ratio; the importance score
changes which channels go at the same ratio. Unstructured pruning only shrinks a zipped artifact, so
its ratio is the only knob worth a trial. The step may also be switched off: on some targets int8
alone is on the front.

The structured ratio reaches 0.8: the strong region (a much smaller model that still meets an
accuracy contract) lies above 0.5 on small CNNs, once fine-tuning is long enough. So when the plan
fine-tunes (a dataset and ``epochs`` > 0), the fine-tuning length is searched too, from the plan's
own ``epochs`` up to three times it: epochs cost only time, never latency or size, and they are what
lets a high ratio keep its accuracy. Fewer epochs than the author chose are not offered.
"""

from __future__ import annotations

from typing import Any

from edgecraft.plugins.pruning.params import PruningParams
from edgecraft.strategy import StrategyParams


def default_space(params: StrategyParams) -> dict[str, dict[str, Any]]:
    assert isinstance(params, PruningParams)
    space: dict[str, dict[str, Any]] = {"enabled": {"choices": [True, False]}}
    if params.pattern is not None:  # N:M sparsity fixes the ratio
        return space
    if params.mode == "structured":
        space["params.ratio"] = {"low": 0.2, "high": 0.8}
        space["params.importance"] = {"choices": ["l1", "l2"]}
    else:
        space["params.ratio"] = {"low": 0.3, "high": 0.9}
    if params.dataset is not None and params.epochs > 0:
        space["params.epochs"] = {"low": params.epochs, "high": 3 * params.epochs}
    return space
