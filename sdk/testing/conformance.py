"""The conformance kit: does an installed strategy or backend keep the contract edgecraft relies on?

``edgecraft plugin check NAME`` and :func:`check_plugin` (for a plugin's own pytest suite) run the same
checks. They use the real machinery a plan run uses (the registry, the plan validator, the compiler,
the builder with its return-value checks from :mod:`edgecraft.plugin_checks`, the artifact
cache), on the tiny bundled models of :mod:`edgecraft.testing.models`, so "conforms" means "a plan
using it will not fail because of it". The checks themselves: :mod:`~edgecraft.testing.strategy_check`,
:mod:`~edgecraft.testing.backend_check`; what they find: :mod:`~edgecraft.testing.findings`.

A **violation** is a broken promise, named by the method and what was expected (one line each); a
**refusal** (a ``CompileError`` from ``resolve``, an ``InputError`` for a model the plugin does not
handle) is a clean answer, not a violation; a **skip** is a check that could not run here (a target
whose runtime is not installed, an emulated device not named with ``--target``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
from edgecraft.errors import InputError
from edgecraft.testing.backend_check import BackendCheck
from edgecraft.testing.findings import ConformanceError, ConformanceReport
from edgecraft.testing.strategy_check import StrategyCheck


def check_plugin(name: str, *, kind: Literal["strategy", "backend"] | None = None,
                 params: Mapping[str, Any] | None = None, targets: Iterable[str] | None = None,
                 options: Mapping[str, Mapping[str, Any]] | None = None, tolerance: float = 1e-3,
                 registry: Any = None, plugins: Iterable[Any] = (), work_dir: Path | None = None) -> ConformanceReport:
    """Run the conformance suite on the installed strategy or backend ``name``.

    ``params``: the strategy's params for the kit's plans (default ``{}``: its defaults). The kit's
    plans define one dataset, ``kit`` (every model input plus labels), for params that name one.
    ``targets``: check on these targets (default for a strategy: the built-in ones, so a broken third-party
    backend cannot fail it; for a backend: its own; emulated targets only when named). ``options``: target
    name -> options. ``tolerance``: a backend's outputs may differ from onnxruntime's by this much
    (absolute, and relative to the output's scale). ``plugins``: plugin objects (modules)
    registered besides the installed entry points, for testing a plugin in-process.
    """
    from edgecraft.registry import build_registry

    registry = registry or build_registry(extra_plugins=list(plugins))
    if kind is None:
        if name in registry.strategies:
            kind = "strategy"
        elif name in registry.backends:
            kind = "backend"
        elif name in registry.targets:
            name, kind = registry.targets[name].obj[0], "backend"
        else:
            registry.blame_broken("strategy or backend", name)
            raise InputError(f"no installed strategy or backend is named {name!r}; strategies: "
                             f"{', '.join(sorted(registry.strategies)) or 'none'}; backends: "
                             f"{', '.join(sorted(registry.backends)) or 'none'}",
                             hint="`edgecraft plugins` lists what is installed; is your package installed "
                                  "(pip install -e .) and its entry point in the `edgecraft` group?")
    with tempfile.TemporaryDirectory(prefix="edgecraft-check-", dir=work_dir) as tmp:
        if kind == "strategy":
            if name not in registry.strategies:
                registry.blame_broken("strategy", name)
                raise InputError(f"no installed strategy is named {name!r}")
            return StrategyCheck(registry, name, dict(params or {}), targets, options or {}, Path(tmp)).run()
        if name not in registry.backends:
            registry.blame_broken("backend", name)
            raise InputError(f"no installed backend is named {name!r}")
        return BackendCheck(registry, name, targets, options or {}, tolerance, Path(tmp), _onnxruntime_outputs,
                            _int8_cnn_onnx).run()


def distribution_plugins(registry: Any, distribution: str) -> list[tuple[Literal["strategy", "backend"], str]]:
    """(kind, name) of every strategy and backend an installed distribution provides (its name as pip spells
    it, case and ``-``/``_`` ignored)."""
    found: list[tuple[Literal["strategy", "backend"], str]] = []
    found += [("strategy", n) for n, p in sorted(registry.strategies.items())
              if norm_dist(p.provenance.distribution) == norm_dist(distribution)]
    found += [("backend", n) for n, p in sorted(registry.backends.items())
              if norm_dist(p.provenance.distribution) == norm_dist(distribution)]
    return found


def check_distribution(distribution: str, *, registry: Any = None, plugins: Iterable[Any] = (),
                       **kwargs: Any) -> list[ConformanceReport]:
    """:func:`check_plugin` on every strategy and backend of the installed ``distribution``; a strategy is
    checked on the distribution's own targets too (besides the built-in ones), since they ship together."""
    from edgecraft.registry import build_registry

    registry = registry or build_registry(extra_plugins=list(plugins))
    found = distribution_plugins(registry, distribution)
    if not found:
        raise InputError(f"distribution {distribution!r} provides no installed strategy or backend",
                         hint="`edgecraft plugins` lists what each installed distribution provides")
    own = [t for t, p in registry.targets.items() if norm_dist(p.provenance.distribution) == norm_dist(distribution)]
    reports = []
    for kind, name in found:
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


def norm_dist(name: str) -> str:
    return name.lower().replace("_", "-")


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
