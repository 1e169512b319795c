"""The root ``edgecraft`` command: the built-in commands first, the plugins' commands on first need.

Plugins' commands are loaded only when the CLI must know them: to list commands (``edgecraft --help``) or to
resolve a name that is not built in. A built-in command (``run``, ``validate``...) never waits for them.
The global options are read into the session's settings as soon as they are parsed, because loading the
plugins' commands already depends on them (``--plugins``, ``--disable-plugins``).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from edgecraft.cli.session import CliSession
from edgecraft.errors import EdgecraftError, PluginError
from edgecraft.settings import DISABLE_ENV
from typer.core import TyperGroup

if TYPE_CHECKING:
    from typer._click import Command, Context  # typer's click: the types TyperGroup's methods are declared with


class RootGroup(TyperGroup):
    """edgecraft's command table: built-in commands, plus those plugins add through ``edgecraft_register_commands``."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.builtin = frozenset(self.commands)
        self._with_plugins = False

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, args)
        self._session(ctx).configure(ctx.params)
        return rest

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and not self._with_plugins:
            self._add_plugin_commands(ctx)
            command = super().get_command(ctx, cmd_name)
            if command is None:
                self._blame_broken(ctx, cmd_name)
        return command

    def list_commands(self, ctx: Context) -> list[str]:
        if not self._with_plugins:
            # e.g. --plugins naming a plugin that is not installed: help still shows the built-in commands
            # (the error comes with any command that loads plugins)
            with contextlib.suppress(EdgecraftError):
                self._add_plugin_commands(ctx)
        return super().list_commands(ctx)

    def _session(self, ctx: Context) -> CliSession:
        session = CliSession.of(ctx)
        session.builtin_commands = self.builtin
        return session

    def _add_plugin_commands(self, ctx: Context) -> None:
        session = self._session(ctx)
        session.configure(ctx.params)  # no-op once parse_args did it; --help exits before it does
        for name, provided in session.plugin_commands().commands.items():
            self.add_command(provided.command, name)
        self._with_plugins = True

    def _blame_broken(self, ctx: Context, cmd_name: str) -> None:
        """A command no plugin provides while some plugin failed: that plugin may be its provider, so the failure
        is the plugin's (exit 3, naming it), as for a strategy or target a plan needs (Registry.blame_broken)."""
        broken = self._session(ctx).plugin_commands().broken
        if broken:
            names = "; ".join(f"{b.plugin!r} ({b.distribution} {b.version}) {b.reason}" for b in broken.values())
            raise PluginError(f"no command {cmd_name!r}, and {len(broken)} plugin(s) did not load and may provide "
                              f"it: {names}", hint=f"fix or uninstall the broken plugin, or skip it with "
                                                   f"{DISABLE_ENV}=NAME (`edgecraft plugins` lists them)")
