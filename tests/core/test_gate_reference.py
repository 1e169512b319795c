"""Gating against a reference report: injected regressions are caught, gone artifacts fall back to the
recorded numbers (and say so), and a reference of another schema or target is exit 2 before any build."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from edgecraft.cli import main

# one intra-op thread: ONNX Runtime's spinning pools make interleaved 2-thread timing noisy on shared machines
FAST_LATENCY = {"warmup": 5, "repeats": 80, "rounds": 8, "threads": 1}


@pytest.fixture
def workdir(tmp_path: Path, example_dir: Path) -> Path:
    for name in ("model.py", "digits_resnet.pt"):
        shutil.copy(example_dir / name, tmp_path / name)
    return tmp_path


@pytest.fixture
def gate_plugins(fake_dist: Callable[..., None], testing_plugins: str) -> None:
    source = (Path(__file__).parent / "gate_testing_plugins.py").read_text()
    fake_dist("edgecraft-gate-testing", "fakeplug_gate", source, entry_point="gatetesting")


def plan_dict(steps: list[dict[str, Any]] | None = None, **gate: Any) -> dict[str, Any]:
    return {
        "name": "gate-test",
        "model": {"kind": "torch", "factory": "model.py:build", "input_shape": [1, 1, 32, 32],
                  "exporter": "torchscript"},
        "data": {"test": {"kind": "digits", "split": "test", "max_samples": 60}},
        "evaluation": {"dataset": "test", "metrics": ["top1"]},
        "latency": FAST_LATENCY,
        "targets": ["ort-cpu"],
        "steps": steps or [],
        "gate": {"time_budget_s": 8, **gate,
                 "reference": {"max_latency_regression_pct": 10, "max_accuracy_drop": 0.01,
                               "max_size_growth_pct": 1, **gate.pop("reference", {})}},
    }


def run(workdir: Path, plan: dict[str, Any], name: str, *extra: str) -> tuple[int, dict[str, Any] | None]:
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(plan))
    report = workdir / f"{name}.json"
    code = main(["run", str(path), "--report-json", str(report), "--cache-dir", str(workdir / "cache"), "-q",
                 "--allow-no-contracts", *extra])  # the plans' reference runs measure without contracts
    return code, json.loads(report.read_text()) if report.exists() else None


def reference_verdicts(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["kind"]: v for v in report["targets"][0]["contracts"] if v["origin"] == "reference"}


@pytest.mark.slow
def test_reference_catches_injected_regressions(workdir: Path, gate_plugins: None, capsys) -> None:
    code, released = run(workdir, plan_dict(), "released")
    assert code == 0 and released is not None
    ref = str(workdir / "released.json")

    # unchanged: the reference artifact is still cached, so it is re-measured interleaved; all pass
    code, same = run(workdir, plan_dict(), "same", "--reference", ref)
    assert code == 0, capsys.readouterr()
    verdicts = reference_verdicts(same)
    assert set(verdicts) == {"latency", "accuracy", "size"} and all(v["passed"] for v in verdicts.values())
    assert same["targets"][0]["reference"]["remeasured"] is True
    assert verdicts["latency"]["ci_low"] < verdicts["latency"]["measured"] < verdicts["latency"]["ci_high"]
    assert same["reference_report"] == ref

    # a candidate that computes everything twice: latency and size regress, accuracy does not
    code, slow = run(workdir, plan_dict([{"strategy": "test-twice"}]), "slow", "--reference", ref, "--junit",
                     str(workdir / "junit.xml"))
    assert code == 1 and slow is not None and slow["passed"] is False and slow["status"] == "fail"
    verdicts = reference_verdicts(slow)
    assert verdicts["latency"]["status"] == "fail" and verdicts["latency"]["ci_low"] > 10
    assert "re-measured interleaved" in verdicts["latency"]["detail"]
    assert verdicts["size"]["status"] == "fail" and verdicts["size"]["measured"] > 90
    assert verdicts["accuracy"]["passed"]
    junit = (workdir / "junit.xml").read_text()
    assert 'failures="2"' in junit and "reference: p50 latency regression" in junit

    # an accuracy regression (noisy weights) is caught against the reference's own accuracy
    code, noisy = run(workdir, plan_dict([{"strategy": "test-noise", "params": {"std": 1.5}}]), "noisy",
                      "--reference", ref)
    assert code == 1 and noisy is not None
    acc = reference_verdicts(noisy)["accuracy"]
    assert acc["status"] == "fail" and acc["measured"] > 0.01 and "top1: reference 1.0000" in acc["detail"]


@pytest.mark.slow
def test_gone_reference_artifact_falls_back_to_recorded_numbers(workdir: Path) -> None:
    code, released = run(workdir, plan_dict(), "released")
    assert code == 0 and released is not None
    target = released["targets"][0]
    gone = str(workdir / "cache" / "gone" / "artifact")
    target["artifact"] = target["compressed"]["artifact"] = gone
    (workdir / "released.json").write_text(json.dumps(released))
    plan = plan_dict(reference={"max_latency_regression_pct": 60})  # recorded numbers: a generous bound
    code, report = run(workdir, plan, "again", "--reference", str(workdir / "released.json"))
    assert report is not None, code
    ref = report["targets"][0]["reference"]
    assert ref["remeasured"] is False and gone in ref["how"] and "no longer in the cache" in ref["how"]
    verdicts = reference_verdicts(report)
    for verdict in verdicts.values():
        assert "recorded numbers" in verdict["detail"] or "recorded numbers" in verdict["note"]
    # the baseline is the same artifact in both runs, so the recorded ratio is normalized by it
    assert "normalized by the shared baseline" in verdicts["latency"]["detail"]
    assert verdicts["size"]["passed"] and verdicts["accuracy"]["passed"]


def minimal_reference(**changes: Any) -> dict[str, Any]:
    side = {"metrics": {"top1": 0.99}, "latency_ms": {"p50": 1.0, "p95": 1.2, "p99": 1.3, "mean": 1.0, "min": 0.9,
                                                      "n": 1}, "size_bytes": 1000, "artifact": "/nope", "cached": True}
    target = {"target": "ort-cpu", "target_name": "ort-cpu", "backend": "onnxruntime", "passed": True,
              "baseline": side, "compressed": side, "contracts": [], "artifact": "/nope", "compiled_key": "x"}
    target.update(changes.pop("target", {}))
    return {"schema": "edgecraft.report/v1", "passed": True, "targets": [target], **changes}


@pytest.mark.parametrize("document,message", [
    (minimal_reference(schema="edgecraft.report/v2"),
     "the report's schema is 'edgecraft.report/v2', but this edgecraft compares against 'edgecraft.report/v1'"),
    ({"passed": True, "targets": []}, "the report's schema is None"),
    (minimal_reference(target={"target": "openvino-cpu", "target_name": "openvino-cpu"}),
     "the reference report is for target(s) ['openvino-cpu'], not 'ort-cpu'"),
    (minimal_reference(target={"target_name": "tvm-llvm-host"}),
     "ran on target 'tvm-llvm-host', but this plan's 'ort-cpu' is 'ort-cpu'"),
    (minimal_reference(targets="oops"), "'targets' must be a list"),
])
def test_bad_reference_is_exit_2_before_building(workdir: Path, capsys, document: dict[str, Any],
                                                 message: str) -> None:
    (workdir / "ref.json").write_text(json.dumps(document))
    code, report = run(workdir, plan_dict(), "plan", "--reference", str(workdir / "ref.json"))
    assert code == 2 and report is None
    assert message in capsys.readouterr().err
    assert not (workdir / "cache").exists()  # nothing was built


def test_reference_needs_bounds_in_the_plan(workdir: Path, capsys) -> None:
    (workdir / "ref.json").write_text(json.dumps(minimal_reference()))
    plan = plan_dict()
    del plan["gate"]["reference"]
    code, _ = run(workdir, plan, "plan", "--reference", str(workdir / "ref.json"))
    assert code == 2 and "add a gate.reference section" in capsys.readouterr().err


def test_missing_or_garbled_reference_file_is_exit_2(workdir: Path, capsys) -> None:
    code, _ = run(workdir, plan_dict(), "plan", "--reference", str(workdir / "absent.json"))
    assert code == 2 and "no such file" in capsys.readouterr().err
    (workdir / "bad.json").write_text("{not json")
    code, _ = run(workdir, plan_dict(), "plan", "--reference", str(workdir / "bad.json"))
    assert code == 2 and "not a JSON report" in capsys.readouterr().err
