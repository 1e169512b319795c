"""The ``contracts`` entry point (a core plugin): registers the built-in contract kinds of
:mod:`edgecraft.verify.contract_kinds` exactly as a third party's kinds would be.

A module of its own so the entry module stays light (``edgecraft --help`` imports every entry module to find
the plugins' commands): the kinds, their plan models and the judging they use are imported when registered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edgecraft.hookspecs import hookimpl

if TYPE_CHECKING:
    from edgecraft.verify.judging import ContractKind


@hookimpl
def edgecraft_register_contract_kinds(register: Callable[[type[ContractKind[Any]]], None]) -> None:
    from edgecraft.verify.contract_kinds import BUILTIN_KINDS

    for kind in BUILTIN_KINDS:
        register(kind)
