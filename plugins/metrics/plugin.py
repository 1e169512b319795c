"""Registers the built-in accuracy metrics through the same hook a third-party package uses.

The ``metrics`` entry point is one of the core plugins (see :data:`edgecraft.registry.CORE_PLUGINS`):
an allowlist of other plugins still loads it, since the plan's default ``evaluation.metrics`` is top1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from edgecraft.hookspecs import hookimpl

if TYPE_CHECKING:
    from edgecraft.metrics import Metric


@hookimpl
def edgecraft_register_metrics(register: Callable[[Metric], None]) -> None:
    from edgecraft.plugins.metrics.accuracy import METRICS  # here: `edgecraft --help` imports this entry module

    for metric in METRICS:
        register(metric)
