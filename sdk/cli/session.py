"""One CLI invocation's state: its settings, its consoles, the plugins it loaded, whether a verdict is pending.

``main()`` creates the session and hands it to click as the root context's ``obj``; every command (a
plugin's included) reaches it with :meth:`CliSession.of`. Nothing lives in module globals, so ``main()``
can run many times in one process (the tests do) and each run sees only its own options.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from edgecraft.settings import Settings, default_cache_dir
from rich.console import Console

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from edgecraft.cli.plugin_commands import PluginCommands
    from edgecraft.plugin_loading import BrokenPlugin
    from edgecraft.registry import Registry
    from typer._click import Context  # typer's click (typer.Context is one): plugins' commands pass theirs


class CliSession:
    """What one ``edgecraft ...`` invocation knows; reached from a command with ``CliSession.of(ctx)``."""

    def __init__(self, *, debug: bool = False) -> None:
        #: Standard output (wide, unwrapped tables when it is not a terminal: CI logs keep whole rows).
        self.out = Console(width=None if sys.stdout.isatty() else 160)
        #: Standard error: notes, progress.
        self.err = Console(stderr=True)
        self._verdict_pending = False
        #: Names of the built-in commands (plugins may not take them); set by the root group.
        self.builtin_commands: frozenset[str] = frozenset()
        self._early_debug = debug
        self._settings: Settings | None = None
        self._plugin_commands: PluginCommands | None = None

    def record(self, event: dict[str, Any]) -> None:
        """Tell the supervising process (:mod:`edgecraft.supervise`) how far the run got."""
        from edgecraft.cli.verdict_pipe import record

        record(event)

    @property
    def verdict_pending(self) -> bool:
        """Set while a run or gate command has not yet judged every verdict and written its reports: exit 0 is
        refused until it is cleared, whatever code path (a stray sys.exit, a plugin) tries to end the run; the
        supervisor (:mod:`edgecraft.supervise`) refuses it even when a plugin ends the process (``os._exit``)."""
        return self._verdict_pending

    @verdict_pending.setter
    def verdict_pending(self, value: bool) -> None:
        if value and not self._verdict_pending:
            self.record({"pending": True})
        self._verdict_pending = value

    @classmethod
    def of(cls, ctx: Context) -> CliSession:
        """The session of the invocation ``ctx`` belongs to (created on first use when ``main()`` did not)."""
        root = ctx.find_root()
        if not isinstance(root.obj, CliSession):
            root.obj = CliSession()
        session: CliSession = root.obj
        return session

    # ------------------------------------------------------------------ settings
    def configure(self, options: Mapping[str, Any]) -> Settings:
        """Fix the settings from the environment and the global options (the root command's params; typer has
        already read the options' environment variables). Later calls return the first result."""
        if self._settings is None:
            settings = Settings.from_env().with_plugin_options(
                plugins=options.get("plugins"), disable=options.get("disable_plugins"),
                strict=options.get("strict_plugins"))
            self._settings = replace(settings, verbose=bool(options.get("verbose")),
                                     debug=bool(options.get("debug")))
        return self._settings

    @property
    def settings(self) -> Settings:
        """The invocation's settings (the environment's alone if the global options were never parsed)."""
        return self._settings if self._settings is not None else self.configure({})

    def cache_dir(self, option: Path | None) -> Path:
        """The artifact cache: ``--cache-dir`` when given, else the settings' folder."""
        if option is not None:
            return option
        return self.settings.cache_dir if self.settings.cache_dir is not None else default_cache_dir()

    @property
    def debug(self) -> bool:
        """``--debug``: tracebacks under error messages (also for errors raised before the options are parsed)."""
        return self._early_debug or (self._settings is not None and self._settings.debug)

    # ------------------------------------------------------------------ plugins
    def registry(self, *, tolerate_broken: bool = False) -> Registry:
        """The plugin registry for these settings. Broken plugins are noted on stderr, or raised under
        --strict-plugins (``tolerate_broken``: the command lists them itself, e.g. ``edgecraft plugins``)."""
        from edgecraft.registry import build_registry

        strict = self.settings.strict_plugins and not tolerate_broken
        registry = build_registry(settings=self.settings, strict=strict)
        if strict:
            for broken in self.plugin_commands().broken.values():
                raise broken.error()
        if not tolerate_broken:
            for broken in registry.broken.values():
                self.err.print(f"note: plugin {broken.plugin!r} ({broken.distribution} {broken.version}) did not "
                               "load and is skipped; `edgecraft plugins` shows why", highlight=False, markup=False)
        return registry

    def plugin_commands(self) -> PluginCommands:
        """The commands plugins add (loaded once per invocation; see :mod:`edgecraft.cli.plugin_commands`)."""
        if self._plugin_commands is None:
            from edgecraft.cli.plugin_commands import load_plugin_commands

            self._plugin_commands = load_plugin_commands(self.settings, self.builtin_commands)
        return self._plugin_commands

    def broken_plugins(self, registry: Registry) -> list[BrokenPlugin]:
        """Every plugin that did not load, for the registry or for its commands, once each."""
        found = dict(registry.broken)
        for name, broken in self.plugin_commands().broken.items():
            found.setdefault(name, broken)
        return list(found.values())
