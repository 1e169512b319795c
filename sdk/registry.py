"""The plugin registry: collects what each loaded plugin registers, rejects conflicts, answers lookups.

Loading the plugins (entry points, provenance, broken plugins) is :mod:`edgecraft.plugin_loading`'s job.
Strategies and backends are discovered only through the ``edgecraft`` entry-point group; the core
never imports a plugin by name (built-ins included). Registration hooks are called one plugin at a
time so every strategy, backend and target is attributed to the distribution that provides it:
that is what makes "two plugins claim one name" an error naming both distributions, and what
``edgecraft plugins`` prints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy
from edgecraft import hookspecs
from edgecraft.errors import InputError, PluginError
from edgecraft.implementations import Providers, check_implementation, find_providers
from edgecraft.plugin_loading import CORE_PLUGINS as CORE_PLUGINS  # documented here too (docs/plugins.md)
from edgecraft.plugin_loading import (
    BrokenPlugin,
    Provenance,
    choose_hint,
    drop_undefined_hooks,
    import_entry_points,
    provenance_of,
)
from edgecraft.settings import DISABLE_ENV, Settings

if TYPE_CHECKING:  # the registry module stays light: `edgecraft --help` imports it to find plugins' commands
    from edgecraft.backend import Backend, TargetInfo
    from edgecraft.metrics import Metric
    from edgecraft.strategy import Strategy


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
    #: "capability@backend" -> a backend's Implementation class (see :mod:`edgecraft.implementations`)
    implementations: dict[str, Provided] = field(default_factory=dict)
    #: contracts[].kind -> ContractKind class
    contract_kinds: dict[str, Provided] = field(default_factory=dict)
    #: entry-point name -> why it did not load (see :class:`BrokenPlugin`).
    broken: dict[str, BrokenPlugin] = field(default_factory=dict)
    #: entry-point names skipped because EDGECRAFT_DISABLE_PLUGINS names them.
    disabled: list[str] = field(default_factory=list)
    #: entry-point (plugin) name -> who provides it, for every loaded plugin (those that register no name too).
    provenance: dict[str, Provenance] = field(default_factory=dict)
    #: The plugin selection this registry was built with (child processes load the same: Settings.child_environ).
    settings: Settings = field(default_factory=Settings)
    _backend_instances: dict[str, Backend] = field(default_factory=dict)

    # ------------------------------------------------------------------ lookups
    def blame_broken(self, what: str, name: str) -> None:
        """A plan needs ``what`` ``name`` that no loaded plugin provides: if some plugin did not load, that
        plugin may be the provider, so the failure is the plugin's (exit 3, naming it), not the plan's."""
        if not self.broken:
            return
        names = "; ".join(f"{b.plugin!r} ({b.distribution} {b.version}) {b.reason}" for b in self.broken.values())
        raise PluginError(f"{what} {name!r} is not provided by any loaded plugin, and "
                          f"{len(self.broken)} plugin(s) did not load and may provide it: {names}",
                          hint=f"fix or uninstall the broken plugin, or skip it with {DISABLE_ENV}=DIST:NAME "
                               "(that distribution's entry point NAME only)")

    def strategy(self, name: str, *, where: str = "strategy") -> Strategy:
        if name not in self.strategies:
            self.blame_broken("strategy", name)
            raise InputError(f"{where}: unknown strategy {name!r}; installed strategies: "
                             f"{', '.join(sorted(self.strategies)) or 'none'}",
                             hint="`edgecraft plugins` lists what is installed")
        return self.strategies[name].obj()

    def target(self, name: str, *, where: str = "target") -> tuple[Backend, TargetInfo]:
        if name not in self.targets:
            self.blame_broken("target", name)
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
            self.blame_broken("metric", name)
            raise InputError(f"{where}: unknown metric {name!r}; registered metrics: "
                             f"{', '.join(sorted(self.metrics))}")
        return self.metrics[name].obj

    def model_source(self, kind: str, *, where: str = "model.kind") -> Any:
        """An instance of the model source kind ``kind``; unknown kinds list the installed ones."""
        if kind not in self.model_sources:
            self.blame_broken("model source kind", kind)
            raise InputError(f"{where} = {kind!r}: unknown model source kind; installed kinds: "
                             f"{', '.join(sorted(self.model_sources)) or 'none'}",
                             hint="`edgecraft plugins` lists what is installed; huggingface needs "
                                  "pip install 'edgecraft[huggingface]'")
        return self.model_sources[kind].obj()

    def dataset_kind(self, kind: str, *, where: str = "data.kind") -> Any:
        """An instance of the dataset kind ``kind``; unknown kinds list the installed ones."""
        if kind not in self.dataset_kinds:
            self.blame_broken("dataset kind", kind)
            raise InputError(f"{where} = {kind!r}: unknown dataset kind; installed kinds: "
                             f"{', '.join(sorted(self.dataset_kinds)) or 'none'}",
                             hint="`edgecraft plugins` lists what is installed")
        return self.dataset_kinds[kind].obj()

    def implementations_for(self, capability: str, backend: str) -> Providers:
        """``backend``'s implementation of ``capability`` if it has one; else why not and who does provide it."""
        return find_providers({k: p.obj for k, p in self.implementations.items()}, capability, backend,
                              {name: t.obj[0] for name, t in self.targets.items()},
                              self.backends[backend].obj.refusals if backend in self.backends else {})
    def contract_kind(self, kind: str, *, where: str = "contracts[].kind") -> Any:
        """An instance of the contract kind ``kind`` (an edgecraft.verify.judging.ContractKind)."""
        if kind not in self.contract_kinds:
            self.blame_broken("contract kind", kind)
            raise InputError(f"{where} = {kind!r}: unknown contract kind; installed kinds: "
                             f"{', '.join(sorted(self.contract_kinds)) or 'none'}",
                             hint="`edgecraft plugins` lists what is installed")
        return self.contract_kinds[kind].obj()

    def provenance_of_strategy(self, name: str) -> Provenance:
        return self.strategies[name].provenance

    def provenance_of_target(self, name: str) -> Provenance:
        return self.targets[name].provenance

    @property
    def hook(self) -> Any:
        return self.plugin_manager.hook

    def notify(self, hook_name: str, **kwargs: Any) -> list[HookFailure]:
        """Call a lifecycle hook plugin by plugin, each with its own copy of the arguments (one integration
        cannot change what the next sees); return the failures, never raise them.

        Why not raise: the hooks run after (or while) contracts are judged; an exception here used to end the
        run with exit 3 and no report, losing every verdict. The caller records the failures in the report's
        ``integration_errors`` and exits 5 (``EXIT_INTEGRATION_FAILED``) when every contract passed. A
        KeyboardInterrupt still ends the run.
        """
        import copy

        from edgecraft.plugin_loading import named_in

        failures: list[HookFailure] = []
        caller = getattr(self.plugin_manager.hook, hook_name)
        for impl in reversed(caller.get_hookimpls()):
            plugin_name = self.plugin_manager.get_name(impl.plugin) or repr(impl.plugin)
            try:
                impl.function(**{arg: copy.deepcopy(kwargs[arg]) for arg in impl.argnames})
            except (Exception, SystemExit) as exc:  # a plugin's sys.exit must not decide the run's exit code
                prov = provenance_of(plugin_name, self.provenance)
                lenient = named_in(plugin_name, prov.distribution, self.settings.best_effort_plugins)
                failures.append(HookFailure(plugin_name, prov.distribution, prov.version, hook_name,
                                            f"{type(exc).__name__}: {exc}", lenient))
        return failures


@dataclass(frozen=True)
class HookFailure:
    """A lifecycle hook that raised: who, where, what (the report's ``integration_errors`` entry)."""

    plugin: str
    distribution: str
    version: str
    hook: str
    error: str
    #: Named in EDGECRAFT_BEST_EFFORT_PLUGINS: reported, but the exit code stays the verdict's.
    best_effort: bool = False


def _collect(registry: Registry, hook_name: str, kind: str, provenance: dict[str, Provenance],
             accept: Callable[[Any, Provenance], list[Provided]]) -> None:
    """Call one registration hook plugin by plugin, attributing what each registers.

    A plugin that raises or registers something invalid is recorded as broken (what it registered in
    this hook is dropped); two plugins claiming one name stays an error, naming both distributions.
    """
    table: dict[str, Provided] = {
        "strategy": registry.strategies, "backend": registry.backends, "metric": registry.metrics,
        "device": registry.devices, "model source": registry.model_sources, "dataset kind": registry.dataset_kinds,
        "implementation": registry.implementations,
        "contract kind": registry.contract_kinds,
    }[kind]
    caller = getattr(registry.plugin_manager.hook, hook_name)
    for impl in reversed(caller.get_hookimpls()):
        plugin_name = registry.plugin_manager.get_name(impl.plugin) or repr(impl.plugin)
        if plugin_name in registry.broken:
            continue
        prov = provenance_of(plugin_name, provenance)
        found: list[Provided] = []

        def register(obj: Any, _prov: Provenance = prov, _found: list[Provided] = found) -> None:
            _found.extend(accept(obj, _prov))

        try:
            impl.function(register=register)
        except PluginError as exc:
            registry.broken[plugin_name] = BrokenPlugin(prov.plugin, prov.distribution, prov.version,
                                                        f"registered something invalid in {hook_name}: "
                                                        f"{exc.message}")
            continue
        except Exception as exc:
            registry.broken[plugin_name] = BrokenPlugin(prov.plugin, prov.distribution, prov.version,
                                                        f"raised in {hook_name}: {type(exc).__name__}: {exc}")
            continue
        for item in found:
            if item.name in table:
                other = table[item.name].provenance
                raise PluginError(f"{kind} name {item.name!r} is registered twice: by {other} and by {item.provenance}",
                                  hint=choose_hint(other, item.provenance))
            table[item.name] = item


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
    from edgecraft.metrics import Metric

    if not isinstance(obj, Metric):
        raise PluginError(f"plugin {prov.plugin!r} ({prov.distribution}) registered {obj!r}, which is not an "
                          "edgecraft.metrics.Metric")
    return [Provided(obj.name, "metric", obj, prov, obj.summary)]


def build_registry(*, plugins: Iterable[str] | None = None, extra_plugins: Iterable[Any] = (),
                   load_entry_points: bool = True, strict: bool | None = None,
                   disable: Iterable[str] | None = None, settings: Settings | None = None) -> Registry:
    """Create the plugin manager and collect strategies, backends, targets and metrics.

    ``settings`` (default: :meth:`Settings.from_env`) selects the plugins; ``plugins`` restricts loading to the
    named entry points (locked-down CI), ``disable`` skips the named ones, ``strict`` overrides, each when given.
    ``extra_plugins`` registers objects directly (tests, embedding applications).

    A plugin that fails (import, an invalid or misspelled hook, a hook raising, listing its targets) is
    kept out and recorded in ``Registry.broken``; with ``strict`` the first one is raised instead, as a
    :class:`PluginError` naming it.
    """
    chosen = (Settings.from_env() if settings is None else settings).with_plugin_options(
        plugins=plugins, disable=disable, strict=strict)
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    registry = Registry(pm, settings=chosen)
    provenance = (import_entry_points(pm, chosen.plugins, chosen.disabled_plugins, registry.broken,
                                       registry.disabled) if load_entry_points else {})
    for index, extra in enumerate(extra_plugins):
        name = getattr(extra, "__name__", None) or f"extra-{index}"
        try:
            pm.register(extra, name=name)
        except Exception as exc:
            registry.broken[name] = BrokenPlugin(name, getattr(extra, "__distribution__", "local"), "-",
                                                 f"has an invalid hook implementation: {exc}")
            continue
        module = name if isinstance(extra, ModuleType) else getattr(type(extra), "__module__", None)
        provenance.setdefault(name, Provenance(name, getattr(extra, "__distribution__", "local"), "-", module))
    drop_undefined_hooks(pm, provenance, registry.broken)
    registry.provenance = provenance

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
    _collect(registry, "edgecraft_register_implementations", "implementation", provenance, lambda obj, prov: [
        Provided(check_implementation(obj, str(prov)), "implementation", obj, prov, obj.summary)])
    _collect(registry, "edgecraft_register_contract_kinds", "contract kind", provenance,
             _accept_class("edgecraft.verify.judging", "ContractKind", "contract kind", "kind", ("model", "measures")))
    for backend_name, provided in list(registry.backends.items()):
        try:
            infos = registry.backend(backend_name).targets()
        except Exception as exc:
            prov = provided.provenance
            registry.broken[prov.plugin] = BrokenPlugin(prov.plugin, prov.distribution, prov.version,
                                                        f"backend {backend_name!r} failed to list its targets: "
                                                        f"{type(exc).__name__}: {exc}")
            continue
        for info in infos:
            if info.name in registry.targets:
                other = registry.targets[info.name].provenance
                raise PluginError(f"target name {info.name!r} is registered twice: by {other} and by "
                                  f"{provided.provenance}", hint=choose_hint(other, provided.provenance))
            registry.targets[info.name] = Provided(info.name, "target", (backend_name, info),
                                                   provided.provenance, info.summary)
    _drop_broken(registry)
    if chosen.strict_plugins and registry.broken:
        raise next(iter(registry.broken.values())).error()
    return registry


def _drop_broken(registry: Registry) -> None:
    """Remove everything a broken plugin registered before it failed, and its lifecycle hooks: a half-loaded
    plugin is not used at all."""
    if not registry.broken:
        return
    for table in (registry.strategies, registry.backends, registry.targets, registry.metrics, registry.devices,
                  registry.model_sources, registry.dataset_kinds, registry.implementations, registry.contract_kinds):
        for name in [n for n, p in table.items() if p.provenance.plugin in registry.broken]:
            del table[name]
    for name in registry.broken:
        if registry.plugin_manager.get_plugin(name) is not None:
            registry.plugin_manager.unregister(name=name)
