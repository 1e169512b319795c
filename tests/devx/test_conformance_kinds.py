"""The conformance kit on every other kind of plugin a third party can install (model sources, dataset kinds,
metrics, contract kinds, integrations, commands, devices): one good plugin of each kind conforms, and one
deliberately broken plugin per case is caught by `edgecraft plugin check NAME` with a one-line reason."""

from __future__ import annotations

import textwrap
from collections.abc import Callable

import pytest
from edgecraft.cli import main
from edgecraft.testing import KINDS, check_plugin, kinds_of

KINDS_SOURCE = """
    import math, uuid
    from typing import Literal
    import numpy as np
    import onnx
    import torch
    from edgecraft import hookimpl
    from edgecraft.datasets import Dataset, DatasetKind, make_dataset
    from edgecraft.metrics import Metric
    from edgecraft.model_source import ModelSourceKind
    from edgecraft.modelio import ModelIO, TensorSpec, io_from_onnx
    from edgecraft.models import OnnxModel, Stage, TorchModel
    from edgecraft.plan import DatasetParams, SourceParams
    from edgecraft.testing.models import cnn_onnx
    from edgecraft.verify.contracts import Verdict
    from edgecraft.verify.judging import ContractKind
    from pydantic import BaseModel, ConfigDict

    # ---------------------------------------------------------------- model sources
    def source(kind_name, **attrs):
        params = type(f"P{len(kind_name)}", (SourceParams,), {"__annotations__": {"kind": Literal[kind_name]}})
        return type(kind_name, (attrs.pop("base"),), {"kind": kind_name, "params_model": params, **attrs})

    class OnnxBase(ModelSourceKind):
        def io(self, params, ctx):
            return io_from_onnx(onnx.load(str(cnn_onnx(ctx.base_dir / "kit-source.onnx"))))
        def load(self, params, io, ctx):
            return OnnxModel(cnn_onnx(ctx.scratch / "model.onnx"), io)

    class WrongIO(OnnxBase):
        def io(self, params, ctx):
            io = super().io(params, ctx)
            spec = io.inputs[0]
            return ModelIO((TensorSpec("image", spec.dtype, spec.shape, spec.batch_axis),), io.outputs)

    class Unstable(OnnxBase):
        def fingerprint(self, params, handle, ctx):
            return uuid.uuid4().hex

    class NaNModule(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3)) * math.nan

    class TorchNaN(ModelSourceKind):
        stage = Stage.TORCH
        def io(self, params, ctx):
            return ModelIO.single("input", (1, 1, 8, 8), output="logits")
        def load(self, params, io, ctx):
            torch.manual_seed(0)
            return TorchModel(NaNModule(), io)

    SOURCES = [source("kit-src-good", base=OnnxBase), source("kit-src-wrong-io", base=WrongIO),
               source("kit-src-unstable", base=Unstable), source("kit-src-nan", base=TorchNaN)]

    # ---------------------------------------------------------------- dataset kinds
    def dataset(kind_name, load):
        params = type(f"D{len(kind_name)}", (DatasetParams,), {"__annotations__": {"kind": Literal[kind_name]}})
        return type(kind_name, (DatasetKind,), {"kind": kind_name, "params_model": params, "load": load})

    def good(self, name, params, ctx):
        rng = np.random.default_rng(0)
        return make_dataset(name, {"x": rng.standard_normal((6, 1, 8, 8))}, rng.integers(0, 3, 6),
                            max_samples=params.max_samples)

    def unseeded(self, name, params, ctx):
        return make_dataset(name, {"x": np.random.standard_normal((6, 4))}, None, max_samples=params.max_samples)

    def nan(self, name, params, ctx):
        x = np.zeros((6, 4), dtype=np.float32)
        x[2, 1] = np.nan
        return Dataset(name, {"x": x}, None)

    def labels_outside(self, name, params, ctx):
        io = ctx.model_io()
        shape = io.inputs[0].concrete(6)
        return make_dataset(name, {io.inputs[0].name: np.zeros(shape, np.float32)}, np.arange(6),
                            max_samples=params.max_samples)

    def all_samples(self, name, params, ctx):
        return make_dataset(name, {"x": np.zeros((6, 4), np.float32)}, None)

    DATASETS = [dataset("kit-data-good", good), dataset("kit-data-unseeded", unseeded), dataset("kit-data-nan", nan),
                dataset("kit-data-labels", labels_outside), dataset("kit-data-max", all_samples)]

    # ---------------------------------------------------------------- metrics
    def mae(outputs, labels, reference):
        return float(np.abs(outputs - reference).mean())

    def weighted(outputs, labels, reference):
        return float((np.arange(len(outputs)) * (outputs.argmax(1) == reference.argmax(1))).mean())

    def normalizing(outputs, labels, reference):
        outputs -= outputs.mean()
        return float((outputs.argmax(1) == reference.argmax(1)).mean())

    METRICS = [
        Metric("kit-metric-good", mae, "mean absolute error", needs_reference=True, higher_is_better=False,
               perfect=0.0),
        Metric("kit-metric-nan", lambda o, l, r: math.nan, "always NaN", needs_reference=True),
        Metric("kit-metric-inverted", mae, "an error declared higher-is-better", needs_reference=True),
        Metric("kit-metric-order", weighted, "weights samples by position", needs_reference=True),
        Metric("kit-metric-mutates", normalizing, "normalizes its input in place", needs_reference=True),
    ]

    # ---------------------------------------------------------------- contract kinds
    def contract(kind_name, judge, measures="size"):
        model = type(f"C{len(kind_name)}", (BaseModel,), {
            "__annotations__": {"kind": Literal[kind_name], "name": "str | None", "max_kb": float},
            "name": None, "max_kb": 100.0, "model_config": ConfigDict(extra="forbid"),
            "describe_bound": lambda self: f"size <= {self.max_kb} kB"})
        return type(kind_name, (ContractKind,), {"kind": kind_name, "model": model, "measures": measures,
                                                  "judge": judge})

    def fair(self, contract, measured):
        kb = measured.size_bytes["compressed"] / 1000
        passed = kb <= contract.max_kb
        return Verdict(name=self.describe(contract), kind="size", passed=passed, status="pass" if passed else "fail",
                       measured=kb, bound=contract.max_kb, unit="kB", detail=f"{kb:.1f} kB")

    def liar(self, contract, measured):
        return fair(self, contract, measured).model_copy(update={"passed": True, "status": "fail"})

    def editing(self, contract, measured):
        measured.size_bytes["compressed"] = 0
        return fair(self, contract, measured)

    def not_finite(self, contract, measured):
        return fair(self, contract, measured).model_copy(update={"measured": math.nan})

    CONTRACTS = [contract("kit-contract-good", fair), contract("kit-contract-liar", liar),
                 contract("kit-contract-nan", not_finite), contract("kit-contract-energy", fair, "energy"),
                 contract("kit-contract-edits", editing)]

    @hookimpl
    def edgecraft_register_model_sources(register):
        for cls in SOURCES:
            register(cls)

    @hookimpl
    def edgecraft_register_datasets(register):
        for cls in DATASETS:
            register(cls)

    @hookimpl
    def edgecraft_register_metrics(register):
        for metric in METRICS:
            register(metric)

    @hookimpl
    def edgecraft_register_contract_kinds(register):
        for cls in CONTRACTS:
            register(cls)
"""

#: One entry point per integration, command set and device plugin (each is checked as its entry point).
HOOK_PLUGINS = {
    "kit-int-good": """
        @hookimpl
        def edgecraft_run_started(plan, targets):
            SEEN.append(len(targets))
        @hookimpl
        def edgecraft_report_ready(report, report_dir):
            SEEN.append(report["passed"])
    """,
    "kit-int-raises": """
        @hookimpl
        def edgecraft_report_ready(report, report_dir):
            raise RuntimeError("the tracker is down")
    """,
    "kit-int-edits": """
        @hookimpl
        def edgecraft_target_finished(target):
            target["contracts"].clear()
    """,
    "kit-int-deletes": """
        @hookimpl
        def edgecraft_report_ready(report, report_dir):
            (report_dir / "report.json").unlink()
    """,
    "kit-int-args": """
        @hookimpl
        def edgecraft_report_ready(report, folder):
            pass
    """,
    "kit-cmd-good": """
        @hookimpl
        def edgecraft_register_commands(cli):
            @cli.command("kit-hello")
            def hello():
                '''Say hello.'''
    """,
    "kit-cmd-builtin": """
        @hookimpl
        def edgecraft_register_commands(cli):
            @cli.command("run")
            def run():
                '''Shadow the built-in run.'''
    """,
    "kit-cmd-twice": """
        @hookimpl
        def edgecraft_register_commands(cli):
            @cli.command("kit-hello")
            def hello():
                '''Say hello too.'''
    """,
    "kit-cmd-none": """
        @hookimpl
        def edgecraft_register_commands(cli):
            pass
    """,
    "kit-dev-good": """
        class Board(Device):
            name = "kit-board"
            def setup(self, cache_dir=None, *, force=False):
                return cache_dir
            def status(self, cache_dir=None):
                return {"ready": False}
        @hookimpl
        def edgecraft_register_devices(register):
            register(Board)
    """,
    "kit-dev-writes": """
        class Board(Device):
            name = "kit-board-writes"
            def setup(self, cache_dir=None, *, force=False):
                return cache_dir
            def status(self, cache_dir=None):
                (cache_dir / "rootfs").mkdir()
                return {"ready": True}
        @hookimpl
        def edgecraft_register_devices(register):
            register(Board)
    """,
    "kit-dev-status": """
        class Board(Device):
            name = "kit-board-status"
            def setup(self, cache_dir=None, *, force=False):
                return cache_dir
            def status(self, cache_dir=None):
                return ["ready"]
        @hookimpl
        def edgecraft_register_devices(register):
            register(Board)
    """,
    "kit-dev-setup": """
        class Board(Device):
            name = "kit-board-setup"
            def setup(self):
                return None
        @hookimpl
        def edgecraft_register_devices(register):
            register(Board)
    """,
}


@pytest.fixture
def kinds(fake_dist: Callable[..., None]) -> None:
    fake_dist("fakeplug-kinds", "fakeplug_kinds", KINDS_SOURCE, entry_point="kinds")
    for entry, body in HOOK_PLUGINS.items():
        module = "fakeplug_" + entry.replace("-", "_")
        header = "from edgecraft import hookimpl\nfrom edgecraft.devices import Device\nSEEN = []\n"
        source = header + textwrap.dedent(body)
        fake_dist(entry.replace("kit-", "fakeplug-"), module, source, entry_point=entry)


GOOD = ["kit-src-good", "kit-data-good", "kit-metric-good", "kit-contract-good", "kit-int-good", "kit-cmd-good",
        "kit-board"]


@pytest.mark.parametrize("name", GOOD)
def test_a_good_plugin_of_each_kind_conforms(kinds: None, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    # kit-cmd-twice adds the same command name: installed together, both are reported (each names the other)
    assert main(["--disable-plugins", "kit-cmd-twice", "plugin", "check", name, "--all"]) == 0, \
        capsys.readouterr().out
    out = capsys.readouterr().out
    assert "conforms" in out and "FAIL" not in out
    assert any(line.startswith("ok") for line in out.splitlines())


#: (name, kind as the report names it, the method, what the one line says)
BROKEN = [
    ("kit-src-wrong-io", "model source", "load()", "the ONNX graph's inputs are ['input']; the declared I/O says "
     "['image']"),
    ("kit-src-unstable", "model source", "fingerprint()", "two loads of the same params gave"),
    ("kit-src-nan", "model source", "load()", "output(s) [0] hold NaN or Inf on the declared inputs"),
    ("kit-data-unseeded", "dataset kind", "load()", "two loads of the same params gave different data"),
    ("kit-data-nan", "dataset kind", "load()", "array 'x': 1 sample(s) hold NaN or Inf"),
    ("kit-data-labels", "dataset kind", "load()", "labels up to 5 for a model with 3 classes"),
    ("kit-data-max", "dataset kind", "load()", "with max_samples=1 returned 6 samples; expected 1"),
    ("kit-metric-nan", "metric", "compute()", "returned nan; expected a finite float"),
    ("kit-metric-inverted", "metric", "compute()", "higher_is_better=True, so expected the identical outputs to "
     "score higher"),
    ("kit-metric-order", "metric", "compute()", "in one sample order and"),
    ("kit-metric-mutates", "metric", "compute()", "edited the arrays it was given"),
    ("kit-contract-liar", "contract kind", "judge()", "passed=True but status='fail'"),
    ("kit-contract-nan", "contract kind", "judge()", "measured not finite"),
    ("kit-contract-edits", "contract kind", "judge()", "edited the measurements it judged"),
    ("kit-contract-energy", "contract kind", "measures", "is 'energy'; expected one of"),
    ("kit-int-raises", "integration", "edgecraft_report_ready", "raised RuntimeError: the tracker is down"),
    ("kit-int-edits", "integration", "edgecraft_target_finished", "edited its argument(s) ['target']"),
    ("kit-int-deletes", "integration", "edgecraft_report_ready", "changed or removed report file(s) "
     "['report.json']"),
    ("kit-int-args", "plugin", "load", "has an invalid hook implementation"),
    ("kit-cmd-builtin", "commands", "edgecraft_register_commands", "adds the command 'run', which is built in"),
    ("kit-cmd-twice", "commands", "edgecraft_register_commands", "which plugin 'kit-cmd-good' adds too"),
    ("kit-cmd-none", "commands", "edgecraft_register_commands", "added no command"),
    ("kit-board-writes", "device", "status()", "wrote ['rootfs'] into the cache folder"),
    ("kit-board-status", "device", "status()", "returned list; expected a dict"),
    ("kit-board-setup", "device", "setup()", "cannot be called as setup(cache_dir, force=False)"),
]


@pytest.mark.parametrize(("name", "kind", "method", "reason"), BROKEN, ids=[b[0] for b in BROKEN])
def test_a_broken_plugin_of_each_kind_is_caught_with_a_one_line_reason(
        kinds: None, name: str, kind: str, method: str, reason: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugin", "check", name]) == 1
    fails = [line for line in capsys.readouterr().out.splitlines() if line.startswith("FAIL")]
    assert fails and all(f"{kind} {name!r}: {method}" in line for line in fails), fails
    assert any(reason in line for line in fails), fails


def test_every_kind_a_third_party_can_register_has_a_check_and_a_broken_plugin() -> None:
    """Each hook of the hookspecs but edgecraft_register_implementations (checked through the strategy that drives
    an implementation, on its backend's targets) maps to a kind the kit checks, and every kind has at least one
    deliberately broken plugin above."""
    from edgecraft import hookspecs

    hooks = {n for n in vars(hookspecs) if n.startswith("edgecraft_")}
    covered = {"edgecraft_register_strategies": "strategy", "edgecraft_register_backends": "backend",
               "edgecraft_register_model_sources": "model source", "edgecraft_register_datasets": "dataset kind",
               "edgecraft_register_metrics": "metric", "edgecraft_register_contract_kinds": "contract kind",
               "edgecraft_register_devices": "device", "edgecraft_register_commands": "commands",
               "edgecraft_run_started": "integration", "edgecraft_target_finished": "integration",
               "edgecraft_report_ready": "integration"}
    assert hooks - set(covered) == {"edgecraft_register_implementations"}
    assert set(covered.values()) | {"plugin"} == set(KINDS)
    broken_kinds = {b[1] for b in BROKEN} | {"strategy", "backend"}  # those two: test_conformance_broken.py
    assert broken_kinds == set(KINDS)


def test_a_name_installed_as_several_kinds_is_checked_as_each(kinds: None) -> None:
    from edgecraft.registry import build_registry

    registry = build_registry()
    assert kinds_of(registry, "tvm") == [("backend", "tvm"), ("commands", "tvm")]
    report = check_plugin("kit-cmd-good", kind="commands", registry=registry)
    assert not report.ok and "kit-cmd-twice" in report.violations[0].message  # installed together, they clash
    assert any(f.outcome == "note" and "built-in command names" in f.message for f in report.findings)


def test_the_check_of_a_distribution_covers_its_integration(kinds: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugin", "check", "fakeplug-int-raises"]) == 1
    assert "integration 'kit-int-raises' from fakeplug-int-raises" in capsys.readouterr().out



@pytest.mark.slow
def test_the_builtin_plugins_of_the_new_kinds_conform() -> None:
    """edgecraft's own metrics, dataset and model source kinds, contract kinds, device, commands and MLflow
    integration pass the kit (params given where a kind needs them)."""
    from edgecraft.registry import build_registry
    from edgecraft.testing import check_name

    registry = build_registry()
    cases: list[tuple[str, dict[str, object]]] = [
        *((m, {}) for m in ("top1", "top5", "agreement", "cosine")), ("digits", {}),
        ("torch", {"params": {"factory": "edgecraft.testing.models:tiny_cnn", "input_shape": [1, 1, 8, 8]}}),
        ("size", {"params": {"max_bytes": 100000}}), ("compute", {"params": {"max_macs": 10**9}}),
        ("accuracy", {"params": {"metric": "top1", "max_drop": 0.01}}), ("arm64-emulated", {}), ("mlflow", {})]
    for name, kwargs in cases:
        for report in check_name(name, registry=registry, builtin_commands=frozenset({"run"}), **kwargs):
            assert report.ok, report.lines()
            assert any(f.outcome == "ok" for f in report.findings), report.lines()
    (commands,) = [r for r in check_name("tvm", registry=registry, builtin_commands=frozenset({"run"}))
                   if r.kind == "commands"]
    assert commands.ok and "adds 'device'" in " ".join(commands.lines())


def test_kind_picks_one_kind_of_a_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugin", "check", "tvm", "--kind", "commands"]) == 0
    out = capsys.readouterr().out
    assert "commands 'tvm'" in out and "backend 'tvm'" not in out
    assert main(["plugin", "check", "tvm", "--kind", "gadget"]) == 2
    assert "--kind 'gadget': not a kind of plugin" in capsys.readouterr().err
