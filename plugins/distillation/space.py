"""The distillation step's default search space (``edgecraft search`` on a plan without ``search.space``).

A scaled student's width sets its size and speed; temperature and the soft/hard mix set how much of
the teacher it recovers. Training length is left as the plan has it: it is cost, not a trade-off.
"""

from __future__ import annotations

from typing import Any

from edgecraft.plugins.distillation.params import STUDENT_SCALED, DistillationParams
from edgecraft.strategy import StrategyParams


def default_space(params: StrategyParams) -> dict[str, dict[str, Any]]:
    assert isinstance(params, DistillationParams)
    space: dict[str, dict[str, Any]] = {"enabled": {"choices": [True, False]},
                                        "params.temperature": {"low": 1.0, "high": 8.0},
                                        "params.alpha": {"low": 0.3, "high": 0.9}}
    if params.student == STUDENT_SCALED:
        space["params.width"] = {"low": 0.25, "high": 0.75}
    return space
