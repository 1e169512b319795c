"""The conformance kit: does an installed plugin keep the contract edgecraft relies on?

``edgecraft plugin check NAME`` and :func:`check_plugin` (for a plugin's own pytest suite) run the same
checks. They use the real machinery a plan run uses (the registry, the plan validator, the compiler,
the builder with its return-value checks from :mod:`edgecraft.plugin_checks`, the artifact
cache), on the tiny bundled models of :mod:`edgecraft.testing.models`, so "conforms" means "a plan
using it will not fail because of it". The checks themselves, one per kind of plugin a third party can
register (every hook of :mod:`edgecraft.hookspecs` but ``edgecraft_register_implementations``: an
implementation is validated when registered and runs when the strategy that drives it is checked on its
backend's targets): :mod:`~edgecraft.testing.strategy_check`, :mod:`~edgecraft.testing.backend_check`,
:mod:`~edgecraft.testing.source_check` (model sources), :mod:`~edgecraft.testing.data_check` (dataset kinds,
metrics), :mod:`~edgecraft.testing.contract_check` (contract kinds), :mod:`~edgecraft.testing.hooks_check`
(integrations, commands, devices); what they find: :mod:`~edgecraft.testing.findings`.

A **violation** is a broken promise, named by the method and what was expected (one line each); a
**refusal** (a ``CompileError`` from ``resolve``, an ``InputError`` for a model the plugin does not
handle) is a clean answer, not a violation; a **skip** is a check that could not run here (a target
whose runtime is not installed, an emulated device not named with ``--target``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from edgecraft.errors import InputError
from edgecraft.plugin_loading import norm_dist
from edgecraft.testing.backend_check import BackendCheck
from edgecraft.testing.findings import ConformanceError, ConformanceReport, Kind
from edgecraft.testing.strategy_check import StrategyCheck


def kinds_of(registry: Any, name: str) -> list[tuple[Kind, str]]:
    """Every (kind, name) ``name`` is installed as: a registered name of a table, a target (its backend), or an
    entry-point plugin implementing lifecycle hooks or commands. One name can be several (the ``tvm`` entry
    point's backend and its commands)."""
    from edgecraft.testing.hooks_check import COMMANDS_HOOK, LIFECYCLE_HOOKS, hook_impls

    tables: tuple[tuple[Kind, dict[str, Any]], ...] = (
        ("strategy", registry.strategies), ("backend", registry.backends), ("model source", registry.model_sources),
        ("dataset kind", registry.dataset_kinds), ("metric", registry.metrics),
        ("contract kind", registry.contract_kinds), ("device", registry.devices))
    found: list[tuple[Kind, str]] = [(kind, name) for kind, table in tables if name in table]
    if name in registry.targets and name not in registry.backends:
        found.append(("backend", registry.targets[name].obj[0]))
    if hook_impls(registry, name, LIFECYCLE_HOOKS):
        found.append(("integration", name))
    if hook_impls(registry, name, [COMMANDS_HOOK]):
        found.append(("commands", name))
    return found


def check_plugin(name: str, *, kind: Kind | None = None,
                 params: Mapping[str, Any] | None = None, targets: Iterable[str] | None = None,
                 options: Mapping[str, Mapping[str, Any]] | None = None, tolerance: float = 1e-3,
                 registry: Any = None, plugins: Iterable[Any] = (), work_dir: Path | None = None,
                 builtin_commands: frozenset[str] | None = None) -> ConformanceReport:
    """Run the conformance suite on the installed plugin ``name`` as ``kind`` (default: the first kind it is
    installed as, in :data:`KINDS` order; :func:`check_name` checks every one).

    ``params``: the strategy's params for the kit's plans (default ``{}``: its defaults), or a model source's,
    dataset kind's or contract's fields besides ``kind``. The kit's plans define one dataset, ``kit`` (every
    model input plus labels), for params that name one.
    ``targets``: check on these targets (default for a strategy: the built-in ones, so a broken third-party
    backend cannot fail it; for a backend: its own; emulated targets only when named). ``options``: target
    name -> options. ``tolerance``: a backend's outputs may differ from onnxruntime's by this much
    (absolute, and relative to the output's scale). ``plugins``: plugin objects (modules)
    registered besides the installed entry points, for testing a plugin in-process. ``builtin_commands``: the
    CLI's own command names (a plugin's command must not take one; the CLI passes them).
    """
    from edgecraft.registry import build_registry

    registry = registry or build_registry(extra_plugins=list(plugins))
    if kind is None:
        found = kinds_of(registry, name)
        if not found:
            return _not_installed(registry, name)
        kind, name = found[0]
    elif kind == "backend" and name in registry.targets and name not in registry.backends:
        name = registry.targets[name].obj[0]
    with tempfile.TemporaryDirectory(prefix="edgecraft-check-", dir=work_dir) as tmp:
        return _run_check(registry, kind, name, dict(params or {}), targets, options or {}, tolerance, Path(tmp),
                          builtin_commands)


def check_name(name: str, **kwargs: Any) -> list[ConformanceReport]:
    """:func:`check_plugin` for every kind ``name`` is installed as (see :func:`kinds_of`)."""
    from edgecraft.registry import build_registry

    registry = kwargs.pop("registry", None) or build_registry(extra_plugins=list(kwargs.pop("plugins", ())))
    found = kinds_of(registry, name)
    if not found:
        return [_not_installed(registry, name)]
    return [check_plugin(n, kind=k, registry=registry, **kwargs) for k, n in found]


def _not_installed(registry: Any, name: str) -> ConformanceReport:
    """A plugin that did not load is a violation (its reason is the finding); a name nobody provides is an error."""
    if name in registry.broken:
        broken = registry.broken[name]
        report = ConformanceReport("plugin", name, f"{broken.distribution} {broken.version} (plugin {name!r})")
        report.add("violation", "load", broken.reason)
        return report
    registry.blame_broken("plugin", name)
    raise InputError(f"nothing installed is named {name!r}; " + "; ".join(
        f"{label}: {', '.join(sorted(table)) or 'none'}" for label, table in (
            ("strategies", registry.strategies), ("backends", registry.backends),
            ("model sources", registry.model_sources), ("dataset kinds", registry.dataset_kinds),
            ("metrics", registry.metrics), ("contract kinds", registry.contract_kinds),
            ("devices", registry.devices), ("plugins", registry.provenance))),
        hint="`edgecraft plugins` lists what is installed; is your package installed "
             "(pip install -e .) and its entry point in the `edgecraft` group?")


def _run_check(registry: Any, kind: Kind, name: str, params: dict[str, Any], targets: Iterable[str] | None,
               options: Mapping[str, Mapping[str, Any]], tolerance: float, work: Path,
               builtin_commands: frozenset[str] | None) -> ConformanceReport:
    import edgecraft.testing.hooks_check as hooks_check
    from edgecraft.testing.contract_check import ContractKindCheck
    from edgecraft.testing.data_check import DatasetCheck, MetricCheck
    from edgecraft.testing.source_check import ModelSourceCheck

    table = {"strategy": registry.strategies, "backend": registry.backends, "model source": registry.model_sources,
             "dataset kind": registry.dataset_kinds, "metric": registry.metrics,
             "contract kind": registry.contract_kinds, "device": registry.devices}.get(kind)
    if table is not None and name not in table:
        registry.blame_broken(kind, name)
        raise InputError(f"no installed {kind} is named {name!r}; installed: {', '.join(sorted(table)) or 'none'}")
    if kind == "strategy":
        return StrategyCheck(registry, name, params, targets, options, work).run()
    if kind == "backend":
        return BackendCheck(registry, name, targets, options, tolerance, work, _onnxruntime_outputs,
                            _int8_cnn_onnx).run()
    if kind == "model source":
        return ModelSourceCheck(registry, name, params, work, _onnxruntime_outputs).run()
    if kind == "dataset kind":
        return DatasetCheck(registry, name, params, work).run()
    if kind == "metric":
        return MetricCheck(registry, name).run()
    if kind == "contract kind":
        return ContractKindCheck(registry, name, params, work).run()
    if kind == "device":
        return hooks_check.DeviceCheck(registry, name, work).run()
    hooks = hooks_check.LIFECYCLE_HOOKS if kind == "integration" else [hooks_check.COMMANDS_HOOK]
    if kind not in ("integration", "commands") or not hooks_check.hook_impls(registry, name, hooks):
        raise InputError(f"no installed plugin {name!r} implements {kind} hooks ({', '.join(hooks)})")
    if kind == "integration":
        return hooks_check.IntegrationCheck(registry, name, work).run()
    return hooks_check.CommandCheck(registry, name, builtin_commands).run()


def distribution_plugins(registry: Any, distribution: str) -> list[tuple[Kind, str]]:
    """(kind, name) of every plugin an installed distribution provides (its name as pip spells it, case and
    ``-``/``_`` ignored): each registered name, each entry point's lifecycle hooks and commands, and each of its
    entry points that did not load."""
    from edgecraft.testing.hooks_check import COMMANDS_HOOK, LIFECYCLE_HOOKS, hook_impls

    mine = norm_dist(distribution)
    found: list[tuple[Kind, str]] = []
    tables: tuple[tuple[Kind, dict[str, Any]], ...] = (
        ("strategy", registry.strategies), ("backend", registry.backends), ("model source", registry.model_sources),
        ("dataset kind", registry.dataset_kinds), ("metric", registry.metrics),
        ("contract kind", registry.contract_kinds), ("device", registry.devices))
    for kind, table in tables:
        found += [(kind, n) for n, p in sorted(table.items()) if norm_dist(p.provenance.distribution) == mine]
    for plugin, prov in sorted(registry.provenance.items()):
        if norm_dist(prov.distribution) != mine:
            continue
        if hook_impls(registry, plugin, LIFECYCLE_HOOKS):
            found.append(("integration", plugin))
        if hook_impls(registry, plugin, [COMMANDS_HOOK]):
            found.append(("commands", plugin))
    found += [("plugin", b.plugin) for b in registry.broken.values() if norm_dist(b.distribution) == mine]
    return found


def check_distribution(distribution: str, *, registry: Any = None, plugins: Iterable[Any] = (),
                       **kwargs: Any) -> list[ConformanceReport]:
    """:func:`check_plugin` on every plugin of the installed ``distribution``; a strategy is
    checked on the distribution's own targets too (besides the built-in ones), since they ship together."""
    from edgecraft.registry import build_registry

    registry = registry or build_registry(extra_plugins=list(plugins))
    found = distribution_plugins(registry, distribution)
    if not found:
        raise InputError(f"distribution {distribution!r} provides no installed plugin",
                         hint="`edgecraft plugins` lists what each installed distribution provides")
    own = [t for t, p in registry.targets.items() if norm_dist(p.provenance.distribution) == norm_dist(distribution)]
    reports = []
    for kind, name in found:
        if kind == "plugin":
            reports.append(_not_installed(registry, name))
            continue
        options = dict(kwargs)
        if kind == "strategy" and own and options.get("targets") is None:
            builtin = [t for t, p in registry.targets.items()  # emulated devices only when named, as by default
                       if p.provenance.distribution == "edgecraft" and not p.obj[1].emulated]
            options["targets"] = sorted(builtin) + sorted(own)
        if kind == "backend" and options.get("targets") is not None:  # each backend its own of the named targets
            mine = {t for t, p in registry.targets.items() if p.obj[0] == name}
            options["targets"] = [t for t in options["targets"] if t in mine]
            if not options["targets"]:
                continue
        reports.append(check_plugin(name, kind=kind, registry=registry, **options))
    return reports


def assert_conforms(name: str, **kwargs: Any) -> ConformanceReport:
    """:func:`check_plugin`, raising :class:`ConformanceError` (an AssertionError) listing each violation.

    For a plugin's own tests::

        def test_conforms():
            edgecraft.testing.assert_conforms("my-strategy")
    """
    report = check_plugin(name, **kwargs)
    if not report.ok:
        raise ConformanceError("\n".join([report.summary(), *report.lines(verbose=False)]))
    return report


def _onnxruntime_outputs(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The kit's reference outputs: ONNX Runtime on one CPU thread (a core dependency, the SDK's reference)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return [np.asarray(o, dtype=np.float64) for o in session.run(None, feeds)]


def _int8_cnn_onnx(path: Path) -> Path:
    """The CNN as an int8 QDQ graph (QuantizeLinear/DequantizeLinear around Conv and Gemm, int8 weights),
    quantized with ONNX Runtime's own tool (a core dependency) on the kit's feeds: what a backend that claims
    int8 kernels must run on integer kernels."""
    from edgecraft.testing.models import CNN, cnn_onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    float_path = cnn_onnx(path.with_name(path.stem + "-float.onnx"))

    class Feeds(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"input": CNN.feeds(8, seed=s)["input"]} for s in range(4)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    quantize_static(str(float_path), str(path), Feeds(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=False)
    return path
