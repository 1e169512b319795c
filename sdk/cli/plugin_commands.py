"""Commands plugins add to the CLI through ``edgecraft_register_commands(cli)`` (simonw/llm's pattern).

Each plugin gets a :class:`typer.Typer` of its own and adds commands or groups to it; only once its hook has
returned and its commands converted does anything reach edgecraft's command table, so a plugin that raises
half-way adds nothing. A plugin that raises, or claims a name that is built in or already another plugin's,
is recorded as broken, exactly as the registry records plugins that fail to load: the CLI keeps working,
``edgecraft plugins`` lists it, ``--strict-plugins`` makes it an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import typer
from edgecraft.plugin_loading import BrokenPlugin, Provenance

if TYPE_CHECKING:
    from edgecraft.settings import Settings

HOOK = "edgecraft_register_commands"


@dataclass(frozen=True)
class PluginCommand:
    """A top-level command (or command group) a plugin added, converted to the click command typer runs."""

    name: str
    #: The click command (typer's ``TyperCommand`` or ``TyperGroup``), ready for the root group's table.
    command: Any
    provenance: Provenance

    @property
    def summary(self) -> str:
        """The command's help, first paragraph, on one line (click's short help would stop at "e.g.")."""
        text = str(self.command.short_help or self.command.help or "")
        return " ".join(text.strip().split("\n\n")[0].split())


@dataclass
class PluginCommands:
    """Every plugin command of one invocation, and the plugins whose commands could not be added."""

    commands: dict[str, PluginCommand] = field(default_factory=dict)
    #: plugin (entry-point) name -> why it adds no command (it failed to load, raised, or clashed).
    broken: dict[str, BrokenPlugin] = field(default_factory=dict)


def load_plugin_commands(settings: Settings, builtin: frozenset[str]) -> PluginCommands:
    """Import the plugins ``settings`` selects and collect their commands; ``builtin`` names are taken."""
    from edgecraft.plugin_loading import load_plugins

    loaded = load_plugins(settings)
    found = PluginCommands(broken=dict(loaded.broken))
    pm = loaded.plugin_manager
    for impl in reversed(getattr(pm.hook, HOOK).get_hookimpls()):
        plugin = pm.get_name(impl.plugin) or repr(impl.plugin)
        prov = loaded.provenance.get(plugin) or Provenance(plugin, "unregistered", "?")
        try:
            commands = _commands_of(plugin, impl.function)
        except Exception as exc:
            found.broken[plugin] = BrokenPlugin(prov.plugin, prov.distribution, prov.version,
                                                f"raised in {HOOK}: {type(exc).__name__}: {exc}")
            continue
        clash = next((name for name in commands if name in builtin or name in found.commands), None)
        if clash is not None:
            owner = "edgecraft's own CLI" if clash in builtin else str(found.commands[clash].provenance)
            found.broken[plugin] = BrokenPlugin(prov.plugin, prov.distribution, prov.version,
                                                f"registers the command {clash!r}, which {owner} provides already")
            continue
        for name, command in commands.items():
            found.commands[name] = PluginCommand(name, command, prov)
    return found


def _commands_of(plugin: str, hook: Any) -> dict[str, Any]:
    """Call one plugin's hook with a fresh Typer and convert what it added (a bad signature fails here)."""
    cli = typer.Typer(name=plugin, add_completion=False)
    hook(cli=cli)
    if not cli.registered_commands and not cli.registered_groups:
        return {}
    return dict(typer.main.get_group(cli).commands)
