"""The factorization step's default search space (``edgecraft search`` on a plan without ``search.space``).

The plan's rank selection mode stays; the search explores its amount: the kept energy, rank ratio or
whole-model target. A fixed ``rank`` is left alone (its sensible range depends on the layers).
"""

from __future__ import annotations

from typing import Any

from edgecraft.plugins.factorization.params import FactorizationParams
from edgecraft.strategy import StrategyParams


def default_space(params: StrategyParams) -> dict[str, dict[str, Any]]:
    assert isinstance(params, FactorizationParams)
    space: dict[str, dict[str, Any]] = {"enabled": {"choices": [True, False]}}
    if params.target is not None or params.selection == "target":
        space["params.target"] = {"low": 0.3, "high": 0.9}
    elif params.ratio is not None or params.selection == "ratio":
        space["params.ratio"] = {"low": 0.25, "high": 0.9}
    elif params.rank is None and params.selection != "rank":
        space["params.energy"] = {"low": 0.6, "high": 0.99}
    return space
