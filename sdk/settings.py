"""One settings object: what a user's environment and global CLI options configure, read once per process.

Environment variables are user-facing inputs (the CI templates set them, the README documents them); they
are read here and nowhere else by the CLI and the modules it configures (the plugin registry, the artifact
cache's default folder). The CLI builds one :class:`Settings` from the environment and its options and hands
it explicitly to what needs it; the library builds one with :meth:`Settings.from_env` when called without.

The plugin selection is the one setting that crosses process boundaries: a child process (the memory probe,
an isolated search trial, a Ray node) must load the same plugins to compute the same plan hashes, and it
reads the selection as a user's input, from :meth:`Settings.child_environ`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

#: Comma-separated entry-point names to load; unset or empty loads every installed plugin.
PLUGINS_ENV = "EDGECRAFT_PLUGINS"
#: Comma-separated entry points never to load (a broken plugin you cannot uninstall right now): ``NAME`` (every
#: distribution's entry point NAME), ``DIST:NAME`` (that distribution's only: the way to choose between two
#: distributions registering one name) or ``DIST:*`` (every entry point of that distribution).
DISABLE_ENV = "EDGECRAFT_DISABLE_PLUGINS"
#: Comma-separated plugins (``NAME``, ``DIST:NAME``, ``DIST:*``) whose lifecycle hooks are best effort: a raising
#: hook is still in the reports' ``integration_errors``, but does not make a passing run exit 5.
BEST_EFFORT_ENV = "EDGECRAFT_BEST_EFFORT_PLUGINS"
#: ``1``/``true``/``yes``/``on``: a plugin that fails to load is an error for every command (``--strict-plugins``).
STRICT_ENV = "EDGECRAFT_STRICT_PLUGINS"
#: The artifact cache folder (``--cache-dir``); default ``$XDG_CACHE_HOME/edgecraft/artifacts``.
CACHE_DIR_ENV = "EDGECRAFT_CACHE_DIR"

_TRUE = ("1", "true", "yes", "on")


def plugin_names(raw: str | Iterable[str] | None) -> frozenset[str]:
    """Entry-point names from ``a,b`` (or an iterable of names), blanks dropped."""
    if raw is None:
        return frozenset()
    parts = raw.split(",") if isinstance(raw, str) else raw
    return frozenset(n.strip() for n in parts if n.strip())


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$EDGECRAFT_CACHE_DIR``, else ``$XDG_CACHE_HOME/edgecraft/artifacts``, else ``~/.cache/edgecraft/artifacts``."""
    env = os.environ if environ is None else environ
    explicit = env.get(CACHE_DIR_ENV)
    if explicit:
        return Path(explicit)
    return Path(env.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgecraft" / "artifacts"


@dataclass(frozen=True)
class Settings:
    """How this process loads plugins, where it caches artifacts, and how much it says.

    ``plugins`` None loads every installed plugin; a set loads only those. Frozen: what configured a command
    stays what it was for the whole command (a copy with changes is :func:`dataclasses.replace`).
    """

    plugins: frozenset[str] | None = None
    disabled_plugins: frozenset[str] = frozenset()
    strict_plugins: bool = False
    #: Plugins whose failing lifecycle hooks do not change the exit code (:data:`BEST_EFFORT_ENV`).
    best_effort_plugins: frozenset[str] = frozenset()
    #: None: the default folder (:func:`default_cache_dir`); :meth:`from_env` always resolves it.
    cache_dir: Path | None = None
    verbose: bool = False
    debug: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings the environment asks for (``os.environ`` unless given)."""
        env = os.environ if environ is None else environ
        return cls(plugins=plugin_names(env.get(PLUGINS_ENV)) or None,
                   disabled_plugins=plugin_names(env.get(DISABLE_ENV)),
                   strict_plugins=env.get(STRICT_ENV, "").strip().lower() in _TRUE,
                   best_effort_plugins=plugin_names(env.get(BEST_EFFORT_ENV)),
                   cache_dir=default_cache_dir(env))

    def with_plugin_options(self, *, plugins: str | Iterable[str] | None = None,
                            disable: str | Iterable[str] | None = None, strict: bool | None = None) -> Settings:
        """These settings with the plugin selection a caller gave explicitly (None: keep this one's)."""
        return replace(self,
                       plugins=self.plugins if plugins is None else plugin_names(plugins) or None,
                       disabled_plugins=self.disabled_plugins if disable is None else plugin_names(disable),
                       strict_plugins=self.strict_plugins if strict is None else strict)

    def child_environ(self) -> dict[str, str]:
        """The variables that make a child edgecraft process load the same plugins (empty: no restriction)."""
        return {PLUGINS_ENV: ",".join(sorted(self.plugins or ())),
                DISABLE_ENV: ",".join(sorted(self.disabled_plugins))}


__all__ = ["BEST_EFFORT_ENV", "CACHE_DIR_ENV", "DISABLE_ENV", "PLUGINS_ENV", "STRICT_ENV", "Settings",
           "default_cache_dir", "plugin_names"]
