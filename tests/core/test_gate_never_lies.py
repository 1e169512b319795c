"""The gate never lies, round 2 (issue 25): bounds that cannot fail, runs without a verdict, outputs that
overwrite inputs, reports that contradict the exit code. Each case runs ``edgecraft`` on a tiny ONNX MatMul."""

from __future__ import annotations

import json
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
