"""Resolve the layer names a plan mentions (``layer_ratios``, ``ignored_layers``) against a module.

Names are those of ``model.named_modules()``; fnmatch patterns are allowed so one entry can cover
every block. A name that matches nothing is an error: a typo must not silently prune a layer the
user meant to protect.
"""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING

from edgecraft.errors import InputError

if TYPE_CHECKING:
    import torch


def _is_pattern(name: str) -> bool:
    return any(ch in name for ch in "*?[")


def match(pattern: str, names: list[str]) -> list[str]:
    if _is_pattern(pattern):
        return [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    return [n for n in names if n == pattern]


def _examples(names: list[str]) -> str:
    shown = names[:12]
    more = f" ... ({len(names) - len(shown)} more)" if len(names) > len(shown) else ""
    return ", ".join(repr(n) for n in shown) + more


def resolve_names(module: torch.nn.Module, patterns: list[str], *, field: str, where: str,
                  candidates: list[str] | None = None) -> dict[str, list[str]]:
    """Map every pattern to the module names it matches; raise ``InputError`` for one that matches none.

    ``candidates`` restricts matching (e.g. to prunable layers); by default every named submodule.
    """
    names = candidates if candidates is not None else [n for n, _ in module.named_modules() if n]
    out: dict[str, list[str]] = {}
    for pattern in patterns:
        hits = match(pattern, names)
        if not hits:
            raise InputError(f"step {where}: params.{field}: {pattern!r} matches no layer of the model",
                             hint=f"layer names (as in model.named_modules()): {_examples(names)}")
        out[pattern] = hits
    return out


def prunable_layer_names(module: torch.nn.Module) -> list[str]:
    """Conv and Linear layers: the layers whose weights/channels pruning acts on."""
    import torch

    kinds = (torch.nn.modules.conv._ConvNd, torch.nn.Linear)
    return [n for n, m in module.named_modules() if n and isinstance(m, kinds)]
