"""Which plugins a process loads: the entry points its settings select, imported and registered with pluggy,
each attributed to its distribution.

A plugin that fails to import or implements a hook edgecraft does not define is recorded as broken, never
raised: one broken installed plugin must not take the tool down. :mod:`edgecraft.registry` then collects what
the loaded plugins register; the CLI calls ``edgecraft_register_commands`` on them itself (cheaply: listing
commands for ``edgecraft --help`` must not build the registry).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import metadata

import pluggy
from edgecraft import hookspecs
from edgecraft.errors import InputError, PluginError
from edgecraft.settings import DISABLE_ENV, PLUGINS_ENV, Settings

#: The ``edgecraft`` distribution's entry points every plan needs (sources, datasets, metrics, contract kinds). An
#: allowlist (EDGECRAFT_PLUGINS, --plugins) narrows the *other* plugins: ``--plugins onnxruntime,quantization``
#: still loads these; only EDGECRAFT_DISABLE_PLUGINS naming one skips it (``load_entry_points=False``: none).
CORE_PLUGINS = frozenset({"sources", "datasets", "metrics", "contracts"})


@dataclass(frozen=True)
class Provenance:
    """Who provides something: the plugin (entry-point) name and its distribution."""

    plugin: str
    distribution: str
    version: str
    #: The entry-point module (for the development cache key: see :mod:`edgecraft.dev_cache`).
    module: str | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return f"{self.distribution} {self.version} (plugin {self.plugin!r})"

    def cache_tag(self) -> str:
        """``dist==version`` for the cache key, with a hash of the plugin's source while it is in development."""
        from edgecraft.dev_cache import plugin_version_tag

        return plugin_version_tag(self.plugin, self.distribution, self.version, self.module)


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin that did not load: why, and at which step (import, a hook, listing targets).

    One broken installed plugin must not take the tool down: the registry keeps going without it,
    ``edgecraft plugins`` lists it, and a command fails (exit 3, naming it) only when its plan needs
    something no loaded plugin provides, or always under ``--strict-plugins``.
    """

    plugin: str
    distribution: str
    version: str
    reason: str

    def error(self) -> PluginError:
        return PluginError(f"plugin {self.plugin!r} from {self.distribution} {self.version} {self.reason}",
                           hint=f"fix or uninstall it, or skip it with {DISABLE_ENV}="
                                f"{qualified(self.distribution, self.plugin)} (`edgecraft plugins` lists broken "
                                "plugins)")


def norm_dist(name: str) -> str:
    """A distribution's name as pip compares them: case, ``-``, ``_`` and ``.`` ignored (PEP 503)."""
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


def qualified(distribution: str, plugin: str) -> str:
    """``DIST:PLUGIN``: one distribution's entry point, for EDGECRAFT_DISABLE_PLUGINS / ``--disable-plugins``."""
    return f"{norm_dist(distribution)}:{plugin}"


def named_in(plugin: str, distribution: str, names: frozenset[str]) -> bool:
    """Whether ``names`` (a plugin selection: EDGECRAFT_DISABLE_PLUGINS, EDGECRAFT_BEST_EFFORT_PLUGINS) names this
    entry point: ``PLUGIN`` (every distribution's entry point of that name), ``DIST:PLUGIN`` (that distribution's
    only) or ``DIST:*`` (every entry point of that distribution).

    Why by distribution: when a third-party package registers a name edgecraft (or another package) also
    registers, ``PLUGIN`` alone would disable both; ``DIST:PLUGIN`` keeps the other one."""
    if plugin in names:
        return True
    named = {(norm_dist(d), p) for d, _, p in (entry.partition(":") for entry in names if ":" in entry)}
    dist = norm_dist(distribution)
    return (dist, plugin) in named or (dist, "*") in named


def choose_hint(first: Provenance | tuple[str, str], second: Provenance | tuple[str, str]) -> str:
    """How to keep one of two distributions that claim the same name (each given as provenance or
    ``(distribution, plugin)``)."""
    a = (first.distribution, first.plugin) if isinstance(first, Provenance) else first
    b = (second.distribution, second.plugin) if isinstance(second, Provenance) else second
    return (f"choose one by distribution with --disable-plugins (or {DISABLE_ENV}): --disable-plugins "
            f"{qualified(*b)} keeps {a[0]}'s, --disable-plugins {qualified(*a)} keeps {b[0]}'s; or uninstall one "
            "(a plain plugin name would disable every distribution's entry point of that name)")


def import_entry_points(pm: pluggy.PluginManager, allow: frozenset[str] | None, disable: frozenset[str],
                        broken: dict[str, BrokenPlugin], disabled: list[str]) -> dict[str, Provenance]:
    """Import the entry points of the ``edgecraft`` group ``allow`` and ``disable`` select (core plugins whatever
    ``allow`` says) and register them with ``pm``; return provenance per plugin name.

    A plugin that fails to import or has an invalid hook implementation is recorded in ``broken``
    and skipped: the other plugins (and ``edgecraft plugins``, which shows why) keep working.
    """
    provenance: dict[str, Provenance] = {}
    eps = sorted(metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP), key=lambda e: e.name)
    available = {ep.name for ep in eps}
    if allow is not None:
        missing = sorted(allow - available)
        if missing:
            raise InputError(f"{PLUGINS_ENV}/--plugins names plugins that are not installed: {missing}; "
                             f"installed: {sorted(available)}")
    seen: dict[str, tuple[str, str]] = {}
    dists: dict[int, tuple[str, str]] = {}
    for ep in eps:
        if allow is not None and ep.name not in allow and not _is_core(ep, dists):
            continue
        dist, version = _distribution(ep, dists)
        if named_in(ep.name, dist, disable):
            disabled.append(ep.name if ep.name in disable else qualified(dist, ep.name))
            continue
        if ep.name in seen:
            if seen[ep.name] == (dist, ep.value):
                # One distribution's metadata found twice on sys.path (an editable install's and a stray
                # ``*.egg-info`` in the working directory): the same plugin, not a conflict.
                continue
            raise PluginError(f"two distributions register the plugin (entry-point) name {ep.name!r}: "
                              f"{seen[ep.name][0]} ({seen[ep.name][1]}) and {dist} ({ep.value})",
                              hint=choose_hint((seen[ep.name][0], ep.name), (dist, ep.name)))
        seen[ep.name] = (dist, ep.value)
        try:
            plugin = ep.load()
        except Exception as exc:
            broken[ep.name] = BrokenPlugin(ep.name, dist, version, f"failed to load ({ep.value}): "
                                           f"{type(exc).__name__}: {exc}")
            continue
        try:
            pm.register(plugin, name=ep.name)
        except Exception as exc:
            broken[ep.name] = BrokenPlugin(ep.name, dist, version, f"has an invalid hook implementation: {exc}")
            continue
        provenance[ep.name] = Provenance(ep.name, dist, version, ep.module)
    return provenance


def _distribution(ep: metadata.EntryPoint, known: dict[int, tuple[str, str]]) -> tuple[str, str]:
    """``ep``'s distribution and version, its METADATA (with the README in it: ~10 ms) parsed once per distribution."""
    if ep.dist is None:
        return "unknown", "?"
    if id(ep.dist) not in known:
        fields = ep.dist.metadata
        known[id(ep.dist)] = (fields["Name"], fields["Version"])
    return known[id(ep.dist)]


HOOK_NAMES = ", ".join(sorted(name for name in vars(hookspecs) if name.startswith("edgecraft_")))


def drop_undefined_hooks(pm: pluggy.PluginManager, provenance: dict[str, Provenance],
                         broken: dict[str, BrokenPlugin]) -> None:
    """Mark broken (and unregister) every plugin implementing a hook edgecraft does not define (misspelled?):
    pluggy's check_pending, plugin by plugin."""
    undefined: dict[str, list[str]] = {}
    for hook_name, caller in vars(pm.hook).items():
        if hook_name.startswith("_") or caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if not impl.optionalhook:
                undefined.setdefault(pm.get_name(impl.plugin) or repr(impl.plugin), []).append(hook_name)
    for plugin_name, hooks in undefined.items():
        prov = provenance_of(plugin_name, provenance)
        broken[plugin_name] = BrokenPlugin(
            prov.plugin, prov.distribution, prov.version,
            f"implements {', '.join(hooks)}, which edgecraft does not define (misspelled?); hooks are named "
            f"{HOOK_NAMES}")
        pm.unregister(name=plugin_name)


def provenance_of(plugin_name: str, provenance: dict[str, Provenance]) -> Provenance:
    """Who registered ``plugin_name`` (a plugin registered without an entry point: "unregistered")."""
    return provenance.get(plugin_name, Provenance(plugin_name, "unregistered", "?"))


def _is_core(ep: metadata.EntryPoint, dists: dict[int, tuple[str, str]]) -> bool:
    """A core plugin: one of :data:`CORE_PLUGINS` from edgecraft itself (another distribution's namesake is not)."""
    return ep.name in CORE_PLUGINS and _distribution(ep, dists)[0] == "edgecraft"


@dataclass
class LoadedPlugins:
    """Selected entry points, loaded, before any registration hook ran (``edgecraft_register_commands``: the CLI)."""

    plugin_manager: pluggy.PluginManager
    provenance: dict[str, Provenance]
    broken: dict[str, BrokenPlugin]


def load_plugins(settings: Settings) -> LoadedPlugins:
    """Import the entry points ``settings`` selects, without building the registry (cheap: no backend is
    instantiated, no target listed). Broken ones are recorded, never raised, whatever ``strict_plugins`` says."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    broken: dict[str, BrokenPlugin] = {}
    provenance = import_entry_points(pm, settings.plugins, settings.disabled_plugins, broken, [])
    drop_undefined_hooks(pm, provenance, broken)
    return LoadedPlugins(pm, provenance, broken)
