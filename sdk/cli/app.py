"""The ``edgecraft`` application: its global options, and the command groups the command modules fill.

Exit codes: 0 met, 1 contract failed, 2 bad input, 3 plugin or runtime failure (see :mod:`edgecraft.cli.entry`).
Heavy imports (torch, runtimes) happen inside the commands, so ``edgecraft --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Annotated

import typer
from edgecraft.cli.root_group import RootGroup
from edgecraft.cli.session import CliSession
from edgecraft.settings import DISABLE_ENV, PLUGINS_ENV, STRICT_ENV, Settings


def _flags_without_placeholder() -> None:
    """typer 0.29's rich help shows a type placeholder for every option, ``<bool>`` for on/off flags too
    (``--debug <bool>``), which reads as if the flag took a value. Flags take none: show no placeholder, as
    click's plain help does. Only the rendering changes (``TyperOption.display_type_rich``)."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    if getattr(shown, "edgecraft_flags", False):
        return

    def display_type_rich(self: TyperOption, ctx: typer.Context) -> str | None:
        return None if self.is_flag and not self.count else shown(self, ctx)

    display_type_rich.edgecraft_flags = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_without_placeholder()


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"edgecraft {version('edgecraft')}")
        raise typer.Exit()


app = typer.Typer(name="edgecraft", cls=RootGroup, add_completion=False, no_args_is_help=True,
                  pretty_exceptions_enable=False,
                  help="Compress neural networks for edge hardware and prove it: plan → compile → run → verify.")
cache_app = typer.Typer(help="Show or clear the artifact cache.", no_args_is_help=True)
plugin_app = typer.Typer(help="For plugin authors: check a plugin's conformance, or start a new plugin package.",
                         no_args_is_help=True)
app.add_typer(cache_app, name="cache")  # typer lists commands first, then groups; plugins' commands come last
app.add_typer(plugin_app, name="plugin")


@app.callback()
def _global(ctx: typer.Context,
            plugins: Annotated[str | None, typer.Option(
                "--plugins", envvar=PLUGINS_ENV,
                help="Comma-separated entry-point names: load only these plugins (for locked-down CI).")] = None,
            debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks under error messages.")] = False,
            verbose: Annotated[bool, typer.Option(
                "--verbose", "-v", help="Show the log lines and warnings of the libraries edgecraft drives (NNCF, "
                "OpenVINO, ONNX Runtime, TVM, torch); hidden otherwise, with a count at the end.")] = False,
            strict_plugins: Annotated[bool, typer.Option(
                "--strict-plugins", envvar=STRICT_ENV,
                help="Fail (exit 3) when any installed plugin fails to load; by default a broken plugin is "
                     "skipped with a note and fails only plans that need it. The CI templates set it.")] = False,
            disable_plugins: Annotated[str | None, typer.Option(
                "--disable-plugins", envvar=DISABLE_ENV,
                help="Comma-separated entry points never to load (e.g. a broken plugin): NAME (every "
                     "distribution's NAME), DIST:NAME (only that distribution's, e.g. when a package registers a "
                     "built-in's name: my-package:quantization keeps edgecraft's) or DIST:* (all of it).")] = None,
            _version: Annotated[bool, typer.Option(
                "--version", is_eager=True, callback=_print_version, expose_value=True,
                help="Print edgecraft's version and exit.")] = False,
            ) -> None:
    """The options above are read into the session's settings by the root group as soon as they are parsed
    (resolving a plugin's command needs them before this runs); here the invocation is set up with them."""
    from edgecraft import logging_setup

    settings = CliSession.of(ctx).settings
    logging_setup.configure(settings.verbose)
    ctx.with_resource(_children_see(settings))


@contextlib.contextmanager
def _children_see(settings: Settings) -> Iterator[None]:
    """Hand the plugin selection to the child processes this invocation starts (the memory probe, isolated
    search trials, Ray nodes), which read it as a user's input; in this process the settings are the source.
    The environment is restored when the invocation ends (``main()`` may run again in the same process)."""
    exported = settings.child_environ()
    saved = {name: os.environ.get(name) for name in exported}
    os.environ.update(exported)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
