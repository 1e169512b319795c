"""The hook specifications: the only way strategies, backends, metrics and integrations extend edgecraft.

Registration hooks receive a ``register`` callback instead of returning lists (the pattern pytest,
tox and llm use): a plugin calls ``register(...)`` once per thing it provides, and edgecraft
records which plugin and distribution provided it, so that a name claimed twice is reported with
both distributions named.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from pathlib import Path

    import typer
    from edgecraft.backend import Backend
    from edgecraft.datasets import DatasetKind
    from edgecraft.devices import Device
    from edgecraft.implementations import Implementation
    from edgecraft.metrics import Metric
    from edgecraft.model_source import ModelSourceKind
    from edgecraft.strategy import Strategy
    from edgecraft.verify.judging import ContractKind

PROJECT_NAME = "edgecraft"
ENTRY_POINT_GROUP = "edgecraft"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def edgecraft_register_strategies(register: Callable[[type[Strategy]], None]) -> None:
    """Register compression strategy classes: call ``register(StrategyClass)`` for each."""


@hookspec
def edgecraft_register_backends(register: Callable[[type[Backend]], None]) -> None:
    """Register backend classes: call ``register(BackendClass)`` for each; a backend provides targets."""


@hookspec
def edgecraft_register_implementations(register: Callable[[type[Implementation]], None]) -> None:
    """Register a backend's part of an algorithm: call ``register(ImplementationClass)`` for each.

    The class subclasses an interface of the SDK (e.g. :class:`edgecraft.quantize.Int8Implementation`,
    capability ``"quantization.int8"``) and sets ``backend`` to the ``Backend.name`` whose targets it serves;
    a strategy gets it with ``ctx.implementation(Int8Implementation)``, never by naming a runtime. One
    implementation per (capability, backend): a second is an error naming both distributions.
    """


@hookspec
def edgecraft_register_metrics(register: Callable[[Metric], None]) -> None:
    """Register accuracy metrics usable in ``evaluation.metrics`` and accuracy contracts."""


@hookspec
def edgecraft_register_model_sources(register: Callable[[type[ModelSourceKind]], None]) -> None:
    """Register model source kinds (``model: {kind: NAME, ...}``): call ``register(SourceClass)`` for each.

    A kind has its own strict params model (shown by ``edgecraft schema``), declares the model's I/O,
    and loads it as a torch or ONNX handle (see :class:`edgecraft.model_source.ModelSourceKind`).
    """


@hookspec
def edgecraft_register_datasets(register: Callable[[type[DatasetKind]], None]) -> None:
    """Register dataset kinds (``data: {NAME: {kind: KIND, ...}}``): call ``register(KindClass)`` for each.

    A kind has its own strict params model and returns named arrays with the sample axis first
    (see :class:`edgecraft.datasets.DatasetKind`).
    """


@hookspec
def edgecraft_register_devices(register: Callable[[type[Device]], None]) -> None:
    """Register devices that ``edgecraft device setup NAME`` prepares (e.g. an emulated board)."""


@hookspec
def edgecraft_register_contract_kinds(register: Callable[[type[ContractKind[Any]]], None]) -> None:
    """Register contract kinds (``contracts: [{kind: NAME, ...}]``): call ``register(KindClass)`` for each.

    A kind says what it needs measured, how to check it before anything is built and how to judge it
    (see :class:`edgecraft.verify.judging.ContractKind`); the built-in kinds register through this hook too.
    """


@hookspec
def edgecraft_register_commands(cli: typer.Typer) -> None:
    """Add commands to the ``edgecraft`` command line, as simonw/llm's ``register_commands(cli)`` does.

    ``cli`` is a :class:`typer.Typer` of this plugin's own: add commands with ``@cli.command()`` and command
    groups with ``cli.add_typer(group, name="...")``; they appear in ``edgecraft --help`` next to the
    built-in ones. The hook runs when the CLI needs the plugins' commands (``edgecraft --help``, a command
    that is not built in, ``edgecraft plugins``), so keep the entry module and the module defining the
    commands light: import heavy things inside the command bodies. A command body gets the invocation's
    plugin registry and settings from ``edgecraft.cli.session.CliSession.of(ctx)``.

    A plugin whose hook raises, or whose command clashes with a built-in command or another plugin's, adds
    no command and is listed as broken by ``edgecraft plugins`` (an error under ``--strict-plugins``).
    """


@hookspec
def edgecraft_run_started(plan: dict[str, Any], targets: list[str]) -> None:
    """Called once every target has compiled, before anything is built or measured.

    ``plan`` is the validated plan as JSON-ready data; ``targets`` the target labels this run covers.
    Integrations open their run here (an experiment tracker's run, a CI check's "in progress"). Each
    integration gets its own copy of the arguments; an exception is reported as for ``edgecraft_report_ready``.
    """


@hookspec
def edgecraft_target_finished(target: dict[str, Any]) -> None:
    """Called after each target is measured and judged, with that target's report entry (JSON-ready)."""


@hookspec
def edgecraft_report_ready(report: dict[str, Any], report_dir: Path | None) -> None:
    """Called once a run's report is complete (after every target), before the CLI exits.

    Integrations (experiment trackers, notifications) implement this. ``report`` is the
    ``edgecraft.report/v1`` document (this hook's own copy); ``report_dir`` is where report files were written,
    if any: read them, do not change them.

    An exception in any of the three lifecycle hooks changes no verdict and loses no report: it is recorded in
    the report's ``integration_errors`` (the reports are written again with it) and a run whose contracts all
    passed exits 5, since an integration a release depends on must not fail silently; a plugin the user names
    in ``EDGECRAFT_BEST_EFFORT_PLUGINS`` is reported but leaves the exit code alone (docs/release-gating.md).
    """
