"""The plugin manager: loads entry points, collects what each plugin registers, rejects conflicts.

Strategies and backends are discovered only through the ``edgecraft`` entry-point group; the core
never imports a plugin by name (built-ins included). Registration hooks are called one plugin at a
time so every strategy, backend and target is attributed to the distribution that provides it:
that is what makes "two plugins claim one name" an error naming both distributions, and what
``edgecraft plugins`` prints.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy
from edgecraft import hookspecs
from edgecraft.backend import Backend, TargetInfo
from edgecraft.errors import InputError, PluginError
from edgecraft.metrics import Metric
from edgecraft.strategy import Strategy

#: Comma-separated entry-point names to load; unset or empty loads every installed plugin.
PLUGINS_ENV = "EDGECRAFT_PLUGINS"


@dataclass(frozen=True)
class Provenance:
    """Who provides something: the plugin (entry-point) name and its distribution."""

    plugin: str
    distribution: str
    version: str

    def __str__(self) -> str:
        return f"{self.distribution} {self.version} (plugin {self.plugin!r})"


@dataclass
class Provided:
    name: str
    kind: str
    obj: Any
    provenance: Provenance
    summary: str = ""


@dataclass
class Registry:
    """Everything the installed plugins provide, each with its provenance."""

    plugin_manager: pluggy.PluginManager
    strategies: dict[str, Provided] = field(default_factory=dict)
    backends: dict[str, Provided] = field(default_factory=dict)
    #: target name -> (backend name, TargetInfo)
    targets: dict[str, Provided] = field(default_factory=dict)
    metrics: dict[str, Provided] = field(default_factory=dict)
    devices: dict[str, Provided] = field(default_factory=dict)
    #: model.kind -> ModelSourceKind class
    model_sources: dict[str, Provided] = field(default_factory=dict)
    #: data.<name>.kind -> DatasetKind class
    dataset_kinds: dict[str, Provided] = field(default_factory=dict)
    _backend_instances: dict[str, Backend] = field(default_factory=dict)

    # ------------------------------------------------------------------ lookups
    def strategy(self, name: str, *, where: str = "strategy") -> Strategy:
        if name not in self.strategies:
            raise InputError(f"{where}: unknown strategy {name!r}; installed strategies: "
                             f"{', '.join(sorted(self.strategies)) or 'none'}",
                             hint="`edgecraft plugins` lists what is installed")
        return self.strategies[name].obj()

    def target(self, name: str, *, where: str = "target") -> tuple[Backend, TargetInfo]:
        if name not in self.targets:
            raise InputError(f"{where}: unknown target {name!r}; installed targets: "
                             f"{', '.join(sorted(self.targets)) or 'none'}",
                             hint="`edgecraft plugins` lists what is installed; some targets come with "
                                  "extras, e.g. pip install 'edgecraft[openvino]'")
        backend_name, info = self.targets[name].obj
        return self.backend(backend_name), info

    def backend(self, name: str) -> Backend:
        if name not in self._backend_instances:
            self._backend_instances[name] = self.backends[name].obj()
        return self._backend_instances[name]

    def metric(self, name: str, *, where: str = "metric") -> Metric:
        if name not in self.metrics:
            raise InputError(f"{where}: unknown metric {name!r}; registered metrics: "
                             f"{', '.join(sorted(self.metrics))}")
        return self.metrics[name].obj

    def model_source(self, kind: str, *, where: str = "model.kind") -> Any:
        """An instance of the model source kind ``kind``; unknown kinds list the installed ones."""
        if kind not in self.model_sources:
            raise InputError(f"{where} = {kind!r}: unknown model source kind; installed kinds: "
                             f"{', '.join(sorted(self.model_sources)) or 'none'}",
                             hint="`edgecraft plugins` lists what is installed; huggingface needs "
                                  "pip install 'edgecraft[huggingface]'")
        return self.model_sources[kind].obj()

    def dataset_kind(self, kind: str, *, where: str = "data.kind") -> Any:
        """An instance of the dataset kind ``kind``; unknown kinds list the installed ones."""
        if kind not in self.dataset_kinds:
            raise InputError(f"{where} = {kind!r}: unknown dataset kind; installed kinds: "
                             f"{', '.join(sorted(self.dataset_kinds)) or 'none'}",
                             hint="`edgecraft plugins` lists what is installed")
        return self.dataset_kinds[kind].obj()

    def provenance_of_strategy(self, name: str) -> Provenance:
        return self.strategies[name].provenance

    def provenance_of_target(self, name: str) -> Provenance:
        return self.targets[name].provenance

    @property
    def hook(self) -> Any:
        return self.plugin_manager.hook

    def notify(self, hook_name: str, **kwargs: Any) -> None:
        """Call a lifecycle hook plugin by plugin; a failing integration is a PluginError naming it
        (exit code 3), never a bare traceback whose exit code 1 CI would read as a failed contract."""
        caller = getattr(self.plugin_manager.hook, hook_name)
        for impl in reversed(caller.get_hookimpls()):
            plugin_name = self.plugin_manager.get_name(impl.plugin) or repr(impl.plugin)
            try:
                impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
            except Exception as exc:
                raise PluginError(f"plugin {plugin_name!r} failed in {hook_name}: {type(exc).__name__}: {exc}") from exc


def _allowlist(explicit: Iterable[str] | None) -> set[str] | None:
    if explicit is not None:
        names = {n.strip() for n in explicit if n.strip()}
        return names or None
    raw = os.environ.get(PLUGINS_ENV, "")
    names = {n.strip() for n in raw.split(",") if n.strip()}
    return names or None


def _load_entry_points(pm: pluggy.PluginManager, allow: set[str] | None) -> dict[str, Provenance]:
    """Load the entry points of the ``edgecraft`` group; return provenance per plugin name."""
    provenance: dict[str, Provenance] = {}
    eps = sorted(metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP), key=lambda e: e.name)
    available = {ep.name for ep in eps}
    if allow is not None:
        missing = sorted(allow - available)
        if missing:
            raise InputError(f"{PLUGINS_ENV}/--plugins names plugins that are not installed: {missing}; "
                             f"installed: {sorted(available)}")
    for ep in eps:
        if allow is not None and ep.name not in allow:
            continue
        dist = ep.dist.name if ep.dist is not None else "unknown"
        version = ep.dist.version if ep.dist is not None else "?"
        if ep.name in provenance:
            raise PluginError(f"two distributions register the plugin name {ep.name!r}: "
                              f"{provenance[ep.name].distribution} and {dist}")
        try:
            plugin = ep.load()
        except Exception as exc:
            raise PluginError(f"plugin {ep.name!r} from {dist} {version} failed to load ({ep.value}): "
                              f"{type(exc).__name__}: {exc}") from exc
        try:
            pm.register(plugin, name=ep.name)
        except Exception as exc:
            raise PluginError(f"plugin {ep.name!r} from {dist} {version} has an invalid hook "
                              f"implementation: {exc}") from exc
        provenance[ep.name] = Provenance(ep.name, dist, version)
    return provenance


def _collect(registry: Registry, hook_name: str, kind: str, provenance: dict[str, Provenance],
             accept: Callable[[Any, Provenance], list[Provided]]) -> None:
    """Call one registration hook plugin by plugin, attributing what each registers."""
    table: dict[str, Provided] = {
        "strategy": registry.strategies, "backend": registry.backends, "metric": registry.metrics,
        "device": registry.devices, "model source": registry.model_sources, "dataset kind": registry.dataset_kinds,
    }[kind]
    caller = getattr(registry.plugin_manager.hook, hook_name)
    for impl in reversed(caller.get_hookimpls()):
        plugin_name = registry.plugin_manager.get_name(impl.plugin) or repr(impl.plugin)
        prov = provenance.get(plugin_name, Provenance(plugin_name, "edgecraft" if plugin_name.startswith(
            "edgecraft.") else "unregistered", _edgecraft_version() if plugin_name.startswith("edgecraft.") else "?"))
        found: list[Provided] = []

        def register(obj: Any, _prov: Provenance = prov, _found: list[Provided] = found) -> None:
            _found.extend(accept(obj, _prov))

        try:
            impl.function(register=register)
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(f"plugin {prov.plugin!r} from {prov.distribution} {prov.version} raised in "
                              f"{hook_name}: {type(exc).__name__}: {exc}") from exc
        for item in found:
            if item.name in table:
                other = table[item.name].provenance
                raise PluginError(f"{kind} name {item.name!r} is registered twice: by {other} and by {item.provenance}",
                                  hint=f"uninstall one of them, or load a subset with {PLUGINS_ENV}")
            table[item.name] = item


def _edgecraft_version() -> str:
    from edgecraft import __version__

    return __version__


def _accept_class(base_module: str, base_name: str, label: str, key: str,
                  required: tuple[str, ...] = ()) -> Callable[[Any, Provenance], list[Provided]]:
    """A ``register`` check for plugin classes: a subclass of ``base`` with its ``key`` and ``required`` attributes.

    The base is imported lazily (devices and kinds live in modules the registry need not load up front).
    """
    def accept(obj: Any, prov: Provenance) -> list[Provided]:
        import importlib

        base = getattr(importlib.import_module(base_module), base_name)
        public = "edgecraft." + base_name if base_module in ("edgecraft.strategy", "edgecraft.backend") else \
            f"{base_module}.{base_name}"
        if not (isinstance(obj, type) and issubclass(obj, base)):
            raise PluginError(f"plugin {prov.plugin!r} ({prov.distribution}) registered {obj!r}, which is not a "
                              f"subclass of {public}")
        for attr in (key, *required):
            if not hasattr(obj, attr):
                raise PluginError(f"{label} {obj.__name__} from {prov} does not set the class attribute {attr!r}")
        return [Provided(getattr(obj, key), label, obj, prov, obj.summary)]

    return accept


def _accept_metric(obj: Any, prov: Provenance) -> list[Provided]:
    if not isinstance(obj, Metric):
        raise PluginError(f"plugin {prov.plugin!r} ({prov.distribution}) registered {obj!r}, which is not an "
                          "edgecraft.metrics.Metric")
    return [Provided(obj.name, "metric", obj, prov, obj.summary)]


def build_registry(*, plugins: Iterable[str] | None = None, extra_plugins: Iterable[Any] = (),
                   load_entry_points: bool = True) -> Registry:
    """Create the plugin manager and collect strategies, backends, targets and metrics.

    ``plugins`` (or the ``EDGECRAFT_PLUGINS`` variable) restricts loading to the named entry points,
    for locked-down CI. ``extra_plugins`` registers objects directly (tests, embedding applications).
    """
    from edgecraft import metrics

    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(metrics, name="edgecraft.metrics")
    provenance = _load_entry_points(pm, _allowlist(plugins)) if load_entry_points else {}
    for index, extra in enumerate(extra_plugins):
        name = getattr(extra, "__name__", None) or f"extra-{index}"
        try:
            pm.register(extra, name=name)
        except Exception as exc:
            raise PluginError(f"plugin {name!r} has an invalid hook implementation: {exc}") from exc
        provenance.setdefault(name, Provenance(name, getattr(extra, "__distribution__", "local"), "-"))
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"a plugin implements a hook that edgecraft does not define (misspelled?): {exc}",
                          hint="hooks are named edgecraft_register_strategies, edgecraft_register_backends, "
                               "edgecraft_register_metrics, edgecraft_register_devices, "
                               "edgecraft_register_model_sources, edgecraft_register_datasets, "
                               "edgecraft_run_started, edgecraft_target_finished, edgecraft_report_ready") from exc

    registry = Registry(pm)
    _collect(registry, "edgecraft_register_strategies", "strategy", provenance,
             _accept_class("edgecraft.strategy", "Strategy", "strategy", "name", ("params_model",)))
    _collect(registry, "edgecraft_register_backends", "backend", provenance,
             _accept_class("edgecraft.backend", "Backend", "backend", "name"))
    _collect(registry, "edgecraft_register_metrics", "metric", provenance, _accept_metric)
    _collect(registry, "edgecraft_register_devices", "device", provenance,
             _accept_class("edgecraft.devices", "Device", "device", "name"))
    _collect(registry, "edgecraft_register_model_sources", "model source", provenance,
             _accept_class("edgecraft.model_source", "ModelSourceKind", "model source", "kind", ("params_model",)))
    _collect(registry, "edgecraft_register_datasets", "dataset kind", provenance,
             _accept_class("edgecraft.datasets", "DatasetKind", "dataset kind", "kind", ("params_model",)))
    for backend_name, provided in registry.backends.items():
        try:
            infos = registry.backend(backend_name).targets()
        except Exception as exc:
            raise PluginError(f"backend {backend_name!r} from {provided.provenance} failed to list its targets: "
                              f"{type(exc).__name__}: {exc}") from exc
        for info in infos:
            if info.name in registry.targets:
                other = registry.targets[info.name].provenance
                raise PluginError(f"target name {info.name!r} is registered twice: by {other} and by "
                                  f"{provided.provenance}",
                                  hint=f"uninstall one of them, or load a subset with {PLUGINS_ENV}")
            registry.targets[info.name] = Provided(info.name, "target", (backend_name, info),
                                                   provided.provenance, info.summary)
    return registry
