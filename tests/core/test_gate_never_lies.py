"""The gate never lies, round 2 (issue 25): bounds that cannot fail, runs without a verdict, outputs that
overwrite inputs, reports that contradict the exit code. Each case runs ``edgecraft`` on a tiny ONNX MatMul."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from edgecraft.cli import main


def tiny_onnx(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3) / 10, "W")
    graph = helper.make_graph([helper.make_node("MatMul", ["input", "W"], ["output"])], "tiny",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))


class Ws:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.cache = root / "cache"
        self.reports = root / "reports"
        self.plan_path = root / "plan.yaml"

    def plan(self, **overrides: Any) -> dict[str, Any]:
        plan: dict[str, Any] = {
            "name": "never-lies",
            "model": {"kind": "onnx", "path": "tiny.onnx"},
            "latency": {"warmup": 1, "repeats": 5, "rounds": 1, "threads": 1},
            "targets": ["ort-cpu"],
            "contracts": [{"kind": "size", "min_ratio": 0.5}],
        }
        plan.update(overrides)
        return plan

    def write(self, plan: dict[str, Any] | str, name: str = "plan.yaml") -> Path:
        self.plan_path = self.root / name
        self.plan_path.write_text(plan if isinstance(plan, str) else yaml.safe_dump(plan, sort_keys=False))
        return self.plan_path

    def run(self, *extra: str, report: bool = True) -> int:
        argv = ["run", str(self.plan_path), "--cache-dir", str(self.cache), "-q"]
        if report:
            argv += ["--report-json", str(self.reports / "report.json")]
        return main([*argv, *extra])


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ws:
    root = tmp_path / "w"
    (root / "tmp").mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(root / "tmp"))
    tiny_onnx(root / "tiny.onnx")
    return Ws(root)


# ---------------------------------------------------------------- class 2 and 5: every number finite, a number
BASE = """\
model: {kind: onnx, path: tiny.onnx}
latency: {warmup: 1, repeats: 5, rounds: 1, threads: 1}
targets: [ort-cpu]
"""

UNFAILABLE = [
    ("latency bound .inf", "contracts: [{kind: latency, max_ms: .inf}]\n", "contracts[0].max_ms"),
    ("latency bound 1e400", "contracts: [{kind: latency, max_ms: 1.0e400}]\n", "contracts[0].max_ms"),
    ("latency bound 'inf'", "contracts: [{kind: latency, max_ms: 'inf'}]\n", "contracts[0].max_ms"),
    ("size bound .nan", "contracts: [{kind: size, min_ratio: .nan}]\n", "contracts[0].min_ratio"),
    ("accuracy bound true", "data: {d: {kind: digits}}\nevaluation: {dataset: d}\n"
     "contracts: [{kind: accuracy, max_drop: true}]\n", "contracts[0].max_drop"),
    ("size bound quoted", "contracts: [{kind: size, max_bytes: '100000000'}]\n", "contracts[0].max_bytes"),
    ("memory bound true", "contracts: [{kind: memory, max_bytes: true}]\n", "contracts[0].max_bytes"),
    ("reference bound .inf", "contracts: [{kind: size, min_ratio: 0.5}]\n"
     "gate: {reference: {max_size_growth_pct: .inf}}\n", "gate.reference.max_size_growth_pct"),
    ("gate budget .inf", "contracts: [{kind: size, min_ratio: 0.5}]\ngate: {time_budget_s: .inf}\n",
     "gate.time_budget_s"),
    ("gate budget past the cap", "contracts: [{kind: size, min_ratio: 0.5}]\ngate: {time_budget_s: 100000}\n",
     "gate.time_budget_s"),
    ("search budget .inf", "contracts: [{kind: size, min_ratio: 0.5}]\nsearch: {time_budget_s: .inf}\n",
     "search.time_budget_s"),
    ("placement timeout .inf", "contracts: [{kind: size, min_ratio: 0.5}]\n"
     "targets: [{target: ort-cpu, placement: {timeout_s: .inf}}]\n", "timeout_s"),
    ("rounds true", "contracts: [{kind: size, min_ratio: 0.5}]\n"
     "latency: {warmup: 1, repeats: 5, rounds: true, threads: 1}\n", "latency.rounds"),
]


@pytest.mark.parametrize("text,field", [pytest.param(t, f, id=i) for i, t, f in UNFAILABLE])
def test_a_bound_that_cannot_fail_is_bad_input(ws: Ws, capsys: pytest.CaptureFixture[str], text: str,
                                               field: str) -> None:
    document = yaml.safe_load(BASE)
    document.update(yaml.safe_load(text))
    ws.write(yaml.safe_dump(document))
    got = main(["validate", str(ws.plan_path)])
    err = capsys.readouterr().err
    assert got == 2, err
    assert field in err, err
    assert "Traceback" not in err


def test_json_infinity_is_bad_input(ws: Ws, capsys: pytest.CaptureFixture[str]) -> None:
    ws.write('{"model": {"kind": "onnx", "path": "tiny.onnx"}, "targets": ["ort-cpu"],\n'
             ' "contracts": [{"kind": "latency", "max_ms": Infinity}]}\n', "plan.json")
    assert ws.run() == 2
    err = capsys.readouterr().err
    assert "contracts[0].max_ms" in err and "finite" in err, err
    assert not (ws.reports / "report.json").exists()


def test_schema_says_numbers_are_finite(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    latency = schema["$defs"]["LatencyContract"]["properties"]["max_ms"]
    assert any(v.get("x-finite") for v in latency["anyOf"] if v.get("type") == "number"), latency
    budget = schema["$defs"]["GateSpec"]["properties"]["time_budget_s"]
    assert budget.get("x-finite") and budget["maximum"] == 3600, budget


def test_integral_numbers_still_read(ws: Ws, capsys: pytest.CaptureFixture[str]) -> None:
    ws.write(ws.plan(contracts=[{"kind": "size", "max_bytes": 1.0e6}], gate={"time_budget_s": 0}))
    assert main(["validate", str(ws.plan_path)]) == 0, capsys.readouterr().err


# ---------------------------------------------------------------- class 3: no exit 0 without a judged contract
def test_a_plan_without_contracts_is_not_a_pass(ws: Ws, capsys: pytest.CaptureFixture[str]) -> None:
    ws.write(ws.plan(contracts=[]))
    assert ws.run() == 2
    err = capsys.readouterr().err
    assert "nothing to judge: the plan has no contracts" in err and "--allow-no-contracts" in err, err
    assert not ws.cache.exists() or not any(ws.cache.iterdir())  # refused before anything was built
    assert not (ws.reports / "report.json").exists()


def test_a_target_no_contract_applies_to_is_not_a_pass(ws: Ws, capsys: pytest.CaptureFixture[str]) -> None:
    ws.write(ws.plan(targets=[{"target": "ort-cpu", "name": "a"}, {"target": "ort-cpu", "name": "b"}],
                     contracts=[{"kind": "size", "min_ratio": 0.5, "targets": ["a"]}]))
    assert ws.run("--target", "b") == 2
    assert "no contract applies to the targets this run measures ('b'" in capsys.readouterr().err


def test_allow_no_contracts_measures_without_judging(ws: Ws, capsys: pytest.CaptureFixture[str]) -> None:
    ws.write(ws.plan(contracts=[]))
    assert ws.run("--allow-no-contracts") == 0, capsys.readouterr().err
    report = json.loads((ws.reports / "report.json").read_text())
    assert report["targets"][0]["contracts"] == []


# ---------------------------------------------------------------- class 4: no output destroys an input
def _clobber_cases(ws: Ws) -> dict[str, tuple[list[str], str]]:
    ref = ws.root / "ref.json"
    (ws.root / "link.json").symlink_to(ref)
    os.link(ws.plan_path, ws.root / "hard.yaml")
    return {
        "report is the reference": (["--reference", str(ref), "--report-json", str(ref)],
                                    "is the same file as --reference"),
        "report is the plan": (["--report-json", str(ws.plan_path)], "is the same file as the plan"),
        "report is the plan by a hard link": (["--report-json", str(ws.root / "hard.yaml")],
                                              "is the same file as the plan"),
        "report is the reference by a symlink": (["--reference", str(ref), "--report-json",
                                                  str(ws.root / "link.json")], "is the same file as --reference"),
        "junit is the report": (["--report-json", str(ws.root / "r.json"), "--junit",
                                 str(ws.root / "sub" / ".." / "r.json")], "is the same file as --report-json"),
        "markdown is the model": (["--markdown", str(ws.root / "tiny.onnx")], "is the same file as model.path"),
    }


CLOBBER_IDS = ["report is the reference", "report is the plan", "report is the plan by a hard link",
               "report is the reference by a symlink", "junit is the report", "markdown is the model"]


@pytest.mark.parametrize("case", CLOBBER_IDS)
def test_an_output_never_overwrites_an_input(ws: Ws, capsys: pytest.CaptureFixture[str], case: str) -> None:
    ws.write(ws.plan(gate={"reference": {"max_size_growth_pct": 5}}))
    ref = ws.root / "ref.json"
    ref.write_text('{"schema": "edgecraft.report/v1", "precious": true}')
    (ws.root / "sub").mkdir()
    before = {p: p.read_bytes() for p in (ws.plan_path, ref, ws.root / "tiny.onnx")}
    args, message = _clobber_cases(ws)[case]
    assert ws.run(*args, report=False) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert {p: p.read_bytes() for p in before} == before
    assert not ws.cache.exists()  # refused before anything ran


# ---------------------------------------------------------------- classes 7 and 8: exit code and reports agree
ENDING_PLUGIN = '''
import os
from edgecraft.hookspecs import hookimpl
from edgecraft.models import Stage
from edgecraft.strategy import Resolution, Strategy, StepResult, StrategyParams


class EndParams(StrategyParams):
    pass


class End(Strategy):
    name = "os-exit"
    params_model = EndParams

    def resolve(self, params, ctx):
        return Resolution(Stage.ONNX, "onnx-os-exit", params)

    def apply(self, step, model, ctx):
        os._exit(0)


@hookimpl
def edgecraft_register_strategies(register):
    register(End)


@hookimpl
def edgecraft_report_ready(report, report_dir):
    how = os.environ.get("FAKEPLUG_REPORT_READY")
    if how == "exit":
        os._exit(0)
    if how == "raise":
        raise ConnectionError("tracking server unreachable")
'''


def _supervised(ws: Ws, site: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]), **env}
    environ.pop("EDGECRAFT_PLUGINS", None)
    environ.pop("EDGECRAFT_SUPERVISE", None)
    return subprocess.run([sys.executable, "-c", "from edgecraft.supervise import console_main; console_main()",
                           *args], env=environ, text=True, capture_output=True, timeout=300)


@pytest.fixture
def ending(fake_dist: Any, tmp_path: Path) -> Path:
    fake_dist("ending-plugins", "fakeplug_ending", ENDING_PLUGIN, entry_point="ending")
    return tmp_path / "site"


@pytest.mark.parametrize("where", ["strategy", "report_ready"])
def test_os_exit_0_in_a_plugin_is_never_a_pass(ws: Ws, ending: Path, where: str) -> None:
    steps = [{"strategy": "os-exit"}] if where == "strategy" else []
    ws.write(ws.plan(steps=steps))
    args = ["run", str(ws.plan_path), "--cache-dir", str(ws.cache), "-q", "--report-dir", str(ws.reports)]
    done = _supervised(ws, ending, *args, FAKEPLUG_REPORT_READY="exit" if where == "report_ready" else "")
    assert done.returncode == 3, done.stderr
    assert "error (no verdict)" in done.stderr and "os._exit" in done.stderr
    assert not (ws.reports / "report.json").exists() and not (ws.reports / "junit.xml").exists()


def test_supervised_run_keeps_the_verdict(ws: Ws, ending: Path) -> None:
    ws.write(ws.plan(contracts=[{"kind": "size", "max_bytes": 1}]))  # fails: exit 1 through the supervisor
    done = _supervised(ws, ending, "run", str(ws.plan_path), "--cache-dir", str(ws.cache), "-q",
                       "--report-json", str(ws.reports / "report.json"))
    assert done.returncode == 1, done.stderr
    assert json.loads((ws.reports / "report.json").read_text())["passed"] is False


def test_a_raising_report_hook_leaves_no_report_that_hides_it(ws: Ws, ending: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """The verdicts stand and the report is kept, naming the failure; the exit code is 5, not 0 (issue 27:
    an exit 3 without a report lost every verdict)."""
    monkeypatch.setenv("FAKEPLUG_REPORT_READY", "raise")
    ws.write(ws.plan())
    assert ws.run("--junit", str(ws.reports / "junit.xml")) == 5
    err = capsys.readouterr().err
    assert "unreachable" in err and "edgecraft_report_ready" in err, err
    junit = (ws.reports / "junit.xml").read_text()
    assert "IntegrationError" in junit and "unreachable" in junit


def test_a_full_disk_at_the_last_report_leaves_none(ws: Ws, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    real = os.replace

    def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> Any:
        if Path(dst).name == "summary.md":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    ws.write(ws.plan())
    assert ws.run("--junit", str(ws.reports / "junit.xml"), "--markdown", str(ws.reports / "summary.md")) == 3
    assert "summary.md: cannot write the report: No space left on device" in capsys.readouterr().err
    assert list(ws.reports.iterdir()) == []


def test_supervisor_and_child_agree_on_the_pipe() -> None:
    import edgecraft.supervise
    from edgecraft.cli import verdict_pipe

    assert edgecraft.supervise.VERDICT_FD_ENV == verdict_pipe.VERDICT_FD_ENV
    assert edgecraft.supervise.PROG_NAME_ENV == verdict_pipe.PROG_NAME_ENV
    # a child that ended 0 after a failing verdict keeps the verdict; one that ended 0 mid-run is exit 3
    assert edgecraft.supervise.decide(0, [{"pending": True}, {"verdict": 1}]) == 1
    assert edgecraft.supervise.decide(0, [{"pending": True}]) == 3
    assert edgecraft.supervise.decide(-15, [{"pending": True}]) == 143
    assert edgecraft.supervise.decide(0, []) == 0  # not a run (validate, --help)


# ---------------------------------------------------------------- class 1: the cache key covers the model's code
MODEL_PY = '''
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import gate2_helper  # a project-local module the forward reads


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        return gate2_helper.work(self.fc(x))


def build():
    torch.manual_seed(0)
    return Net()
'''


def test_editing_a_module_the_forward_reads_rebuilds_the_artifact(ws: Ws, capsys: pytest.CaptureFixture[str]) -> None:
    (ws.root / "model.py").write_text(MODEL_PY)
    helper = ws.root / "gate2_helper.py"
    helper.write_text("def work(x):\n    return x\n")
    ws.write(ws.plan(model={"kind": "torch", "factory": "model.py:build", "input_shape": [1, 4]}))
    try:
        assert ws.run() == 0, capsys.readouterr().err
        first = json.loads((ws.reports / "report.json").read_text())["targets"][0]
        assert ws.run() == 0
        again = json.loads((ws.reports / "report.json").read_text())["targets"][0]
        assert again["compiled_key"] == first["compiled_key"] and again["baseline"]["cached"] is True
        helper.write_text("import torch\n\ndef work(x):\n    for _ in range(40):\n"
                          "        x = torch.tanh(x)\n    return x\n")
        assert ws.run() == 0
        edited = json.loads((ws.reports / "report.json").read_text())["targets"][0]
        assert edited["compiled_key"] != first["compiled_key"]
        assert edited["baseline"]["cached"] is False
    finally:
        sys.modules.pop("gate2_helper", None)
        sys.path[:] = [p for p in sys.path if p != str(ws.root)]


def test_a_model_whose_code_has_no_file_is_never_served_from_the_cache(ws: Ws,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    (ws.root / "nofile.py").write_text(
        "import torch\n\nclass Net(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = torch.nn.Linear(4, 3)\n\n    def forward(self, x):\n        return self.fc(x)\n\n"
        "Net.__module__ = 'gate2_generated'  # as code built at run time: no source file\n\n"
        "def build():\n    torch.manual_seed(0)\n    return Net()\n")
    ws.write(ws.plan(model={"kind": "torch", "factory": "nofile.py:build", "input_shape": [1, 4]}))
    for _ in range(2):
        assert ws.run() == 0
        baseline = json.loads((ws.reports / "report.json").read_text())["targets"][0]["baseline"]
        assert baseline["cached"] is False
        assert "not cached: the code of gate2_generated.Net has no source file" in baseline["cache_rebuilt_reason"]


# ---------------------------------------------------------------- class 6: labels the model cannot produce
def _labelled(ws: Ws, labels: list[int]) -> None:
    rng = np.random.default_rng(0)
    np.savez(ws.root / "d.npz", x=rng.normal(size=(len(labels), 4)).astype(np.float32), y=np.array(labels))


def test_labels_outside_the_models_classes_are_bad_input(ws: Ws, capsys: pytest.CaptureFixture[str]) -> None:
    _labelled(ws, [7, 8, 9, 7])  # the model has 3 classes
    ws.write(ws.plan(data={"eval": {"kind": "npz", "path": "d.npz"}}, evaluation={"dataset": "eval"},
                     contracts=[{"kind": "accuracy", "max_drop": 0.0}]))
    assert ws.run() == 2
    err = capsys.readouterr().err
    assert "dataset 'eval', metric 'top1': 4 of 4 labels are outside the model's 3 classes (0..2): 7, 8, 9" in err
    assert not (ws.reports / "report.json").exists()


def test_a_relative_drop_over_a_zero_baseline_is_not_zero(ws: Ws, capsys: pytest.CaptureFixture[str]) -> None:
    import onnx

    model = onnx.load(str(ws.root / "tiny.onnx"))  # labels 0 where the model always says 2: top1 0 on both sides
    _labelled(ws, [0, 0, 0, 0])
    weight = np.zeros((4, 3), dtype=np.float32)
    weight[:, 2] = 1.0
    x = np.abs(np.load(ws.root / "d.npz")["x"])
    np.savez(ws.root / "d.npz", x=x, y=np.zeros(4, dtype=np.int64))
    model.graph.initializer[0].CopyFrom(onnx.numpy_helper.from_array(weight, "W"))
    onnx.save(model, str(ws.root / "tiny.onnx"))
    ws.write(ws.plan(data={"eval": {"kind": "npz", "path": "d.npz"}}, evaluation={"dataset": "eval"},
                     contracts=[{"kind": "accuracy", "max_drop": 0.01, "relative": True}]))
    assert ws.run() == 2
    assert "a relative drop is undefined when the baseline's top1 is 0 (0/0)" in capsys.readouterr().err


# ---------------------------------------------------------------- class 9: a cached run sweeps killed runs' leftovers
def test_a_cached_run_sweeps_unlocked_leftovers(ws: Ws, capsys: pytest.CaptureFixture[str]) -> None:
    import time

    ws.write(ws.plan())
    assert ws.run() == 0, capsys.readouterr().err
    shard = next(p for p in ws.cache.iterdir() if p.is_dir())
    old = time.time() - 3600
    left = [shard / ".building-deadbeef0000-x", ws.root / "tmp" / "edgecraft-work-killed"]
    for folder in left:
        folder.mkdir()
        lock = folder.with_name(folder.name + ".lock")
        lock.write_text("12345\n")  # a killed builder's lock: nobody holds it
        os.utime(lock, (old, old))
    live = ws.root / "tmp" / "edgecraft-work-live"
    live.mkdir()
    from edgecraft.assembly.cache_verify import held_lock

    with held_lock(live):  # a live run's folder stays
        assert ws.run() == 0
        report = json.loads((ws.reports / "report.json").read_text())
        assert report["targets"][0]["compressed"]["cached"] is True  # nothing was built
        assert [p for p in left if p.exists()] == []
        assert live.exists()


# ---------------------------------------------------------------- the bootstrap's memory does not grow with calls
def test_bootstrap_peak_memory_is_bounded_whatever_the_calls() -> None:
    """2 rounds x 20,000 calls x 500 resamples gathered at once was 320 MB (16 bytes per resample per call:
    the CLI's "leak" of ~16 KB per timed call at 2000 resamples); in chunks it stays under ~100 MB."""
    import tracemalloc

    from edgecraft.verify.stats import percentile_interval, ratio_interval

    rng = np.random.default_rng(0)
    rounds = rng.lognormal(-9, 0.1, size=(2, 20_000))
    tracemalloc.start()
    try:
        ci = percentile_interval(rounds, "p95", resamples=500)
        ratio = ratio_interval(rounds, rounds * 1.1, "p99", resamples=500)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100e6, f"{peak / 1e6:.0f} MB"
    assert ci.low <= np.percentile(rounds, 95) <= ci.high
    assert ratio.low <= 1 / 1.1 * 1.0001 and ratio.high >= 1 / 1.1 * 0.9999


# ---------------------------------------------------------------- class 10 (part): names, FIFOs, settings
@pytest.mark.parametrize("name", ["a\nPASSED: 9 of 9", "ort\u202ecpu", "x\x1b[32m"])
def test_a_name_that_could_forge_report_text_is_bad_input(ws: Ws, capsys: pytest.CaptureFixture[str],
                                                         name: str) -> None:
    ws.write(ws.plan(targets=[{"target": "ort-cpu", "name": name}]))
    assert ws.run() == 2
    err = capsys.readouterr().err
    assert "targets[0].name" in err and "control and bidirectional characters" in err, err
    assert name not in err


def test_a_fifo_as_the_plan_is_refused_not_read(ws: Ws, capsys: pytest.CaptureFixture[str]) -> None:
    os.mkfifo(ws.root / "plan.yaml")
    assert main(["validate", str(ws.root / "plan.yaml")]) == 2  # before: blocked for ever opening the FIFO
    assert "is not a regular file" in capsys.readouterr().err


def test_a_non_numeric_plan_size_limit_is_bad_input(ws: Ws, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    ws.write(ws.plan())
    monkeypatch.setenv("EDGECRAFT_MAX_PLAN_BYTES", "lots")
    assert main(["validate", str(ws.plan_path)]) == 2
    err = capsys.readouterr().err
    assert "EDGECRAFT_MAX_PLAN_BYTES = 'lots': expected a positive number of bytes" in err and "Traceback" not in err


def test_report_never_exits_0_on_a_failed_contract(ws: Ws, capsys: pytest.CaptureFixture[str]) -> None:
    ws.write(ws.plan(contracts=[{"kind": "size", "max_bytes": 1}]))
    assert ws.run() == 1
    document = json.loads((ws.reports / "report.json").read_text())
    document["exit_code"] = 0  # a report whose code says pass while a contract failed
    (ws.root / "edited.json").write_text(json.dumps(document))
    assert main(["report", str(ws.root / "edited.json")]) == 1


def test_search_file_names_never_leave_the_output_folder() -> None:
    from edgecraft.search.report import file_label

    for label in ["../../etc/x", "a/b", ".hidden", "..", "ort\\cpu"]:
        name = file_label(label)
        assert "/" not in name and "\\" not in name and not name.startswith(".") and name
    assert file_label("ort-cpu") == "ort-cpu"
    assert file_label("a/b") != file_label("a_b")


def test_a_module_with_a_made_up_file_does_not_make_the_model_uncacheable(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    import torch
    from edgecraft.code_fingerprint import code_fingerprint

    monkeypatch.chdir(tmp_path)
    fake = types.ModuleType("gate2_fake")
    fake.__file__ = "_classes.py"  # as torch._classes: relative, and no such file
    monkeypatch.setitem(sys.modules, "gate2_fake", fake)
    digest, files = code_fingerprint(torch.nn.Linear(2, 2), tmp_path)
    assert digest is not None, files
