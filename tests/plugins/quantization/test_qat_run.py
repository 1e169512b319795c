"""End to end: ``mode: qat`` on the bundled example (both runtimes), after other torch steps, and the benchmark."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from edgecraft.plan import RawPlan
from edgecraft.registry import build_registry
from edgecraft.runner import run_plan

HERE = Path(__file__).parent
ROOT = HERE.parents[2]


@pytest.fixture(scope="module")
def registry() -> Any:
    return build_registry()


@pytest.mark.slow
@pytest.mark.openvino
def test_the_example_meets_its_contract_with_every_layer_int8(registry: Any, tmp_path: Path) -> None:
    from edgecraft.plan.loading import load_plan

    plan, base = load_plan(ROOT / "examples" / "qat" / "plan.yaml", registry)
    plan = plan.model_copy(update={"latency": plan.latency.model_copy(update={"rounds": 2, "round_ms": 20})})
    report = run_plan(plan, registry, base_dir=base, cache_dir=tmp_path / "cache")
    assert [t.target for t in report.targets] == ["ort-cpu", "openvino-cpu"]
    for t in report.targets:
        assert t.passed, t.contracts
        layers = t.compressed.runtime["int8_layers"]  # read back from the runtime that ran it
        assert layers["all_int8"] and sum(layers["int8"].values()) == 10 and not layers["float"], layers
        step = t.compressed.steps[0]
        assert step["mode"] == "qat" and step["qat"]["epochs_run"] == 3 and step["wall_s"] > 0
        simulated = step["torch_simulated"]
        assert set(simulated) >= {"float", "int8_before_qat", "int8_after_qat"}
    # Trained once: the second target reuses the first one's torch stage.
    assert report.targets[1].compressed.steps[0].get("reused_from_other_target") is True


@pytest.mark.slow
def test_qat_after_pruning_distillation_and_factorization(registry: Any, tmp_path: Path) -> None:
    plan = RawPlan.model_validate({
        "model": {"kind": "torch", "factory": "qmodels.py:plain", "input_shape": [1, 1, 8, 8]},
        "data": {"train": {"kind": "digits", "split": "train", "image_size": 8},
                 "test": {"kind": "digits", "split": "test", "image_size": 8}},
        "evaluation": {"dataset": "test", "metrics": ["top1"]},
        "latency": {"warmup": 1, "repeats": 5, "rounds": 1},
        "steps": [
            {"strategy": "pruning", "name": "prune", "params": {"ratio": 0.25, "dataset": "train", "epochs": 1}},
            {"strategy": "distillation", "name": "recover",
             "params": {"train": "train", "student": "current", "epochs": 1, "batch_size": 64}},
            {"strategy": "factorization", "name": "lowrank", "params": {"ratio": 0.5}},
            {"strategy": "quantization", "name": "qat",
             "params": {"mode": "qat", "calibration_dataset": "train", "qat": {"epochs": 1, "lr": 3e-4}}}],
        "targets": ["ort-cpu"],
        "contracts": [{"kind": "accuracy", "metric": "top1", "max_drop": 0.05}]})
    report = run_plan(plan, registry, base_dir=HERE, cache_dir=tmp_path / "cache")
    target = report.targets[0]
    assert [s["label"] for s in target.compressed.steps] == ["prune", "recover", "lowrank", "qat"]
    layers = target.compressed.runtime["int8_layers"]
    assert layers["all_int8"] and not layers["float"], layers
    assert target.passed, target.contracts


@pytest.mark.slow
def test_benchmark_smoke(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import qat as bench
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    assert bench.main(["--smoke", "--json", str(tmp_path / "qat.json")]) == 0
    figures = json.loads((tmp_path / "qat.json").read_text())
    for key in ("ptq_top1_drop_pt", "qat_top1_drop_pt", "qat_speedup_vs_fp32", "ptq_speedup_vs_fp32",
                "qat_vs_ptq_speedup_ratio", "qat_wall_s", "all_int8", "cpu"):
        assert key in figures
    assert all(figures["all_int8"].values()) and figures["smoke"] is True
