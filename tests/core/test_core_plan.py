"""Plan loading and validation: strict fields, readable errors, YAML/JSON/Python, the JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from edgecraft.cli import main
from edgecraft.errors import PlanValidationError
from edgecraft.plan import CompressionPlan, StepSpec, TargetSpec
from edgecraft.plan.loading import load_plan, validate_plan
from edgecraft.plugins.sources.torch_factory import TorchSourceParams as TorchModelSource
from edgecraft.registry import build_registry

EXAMPLE = {
    "model": {"kind": "torch", "factory": "model.py:build", "input_shape": [1, 1, 32, 32]},
    "data": {"test": {"kind": "digits", "split": "test"}},
    "evaluation": {"dataset": "test"},
    "targets": ["ort-cpu"],
    "contracts": [{"kind": "accuracy", "metric": "top1", "max_drop": 0.01}],
}


def _write(tmp_path: Path, data: dict | str, name: str = "plan.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def test_example_plan_validates(example_dir: Path) -> None:
    plan, base = load_plan(example_dir / "plan.yaml", build_registry())
    assert base == example_dir
    assert plan.targets[0].target == "ort-cpu"


def test_json_plan_loads(tmp_path: Path) -> None:
    plan, _ = load_plan(_write(tmp_path, json.dumps(EXAMPLE), "plan.json"), build_registry())
    assert isinstance(plan.model, TorchModelSource)


def test_unknown_key_names_path_and_accepted_keys(tmp_path: Path) -> None:
    bad = {**EXAMPLE, "data": {"test": {"kind": "digits", "splitt": "test"}}}
    with pytest.raises(PlanValidationError) as info:
        load_plan(_write(tmp_path, bad), build_registry())
    message = str(info.value)
    assert "plan.yaml" in message and "data.test.splitt" in message
    assert "accepted keys here:" in message and "split" in message


def test_unknown_top_level_key(tmp_path: Path) -> None:
    with pytest.raises(PlanValidationError, match=r"contract: Extra inputs.*accepted keys here: contracts"):
        load_plan(_write(tmp_path, {**EXAMPLE, "contract": []}), build_registry())


def test_malformed_yaml_gives_line_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path, "model:\n  kind: torch\n  factory: [unclosed\n")
    with pytest.raises(PlanValidationError, match=r"plan.yaml:\d+:\d+: malformed YAML"):
        load_plan(path, build_registry())


def test_bad_value_names_value_and_what_is_accepted(tmp_path: Path) -> None:
    bad = {**EXAMPLE, "contracts": [{"kind": "latency", "percentile": "p42", "max_ms": 3}]}
    with pytest.raises(PlanValidationError) as info:
        load_plan(_write(tmp_path, bad), build_registry())
    assert "contracts[0].percentile = 'p42'" in str(info.value)
    assert "'p50', 'p95' or 'p99'" in str(info.value)


def test_unknown_strategy_and_target_list_installed(tmp_path: Path) -> None:
    bad = {**EXAMPLE, "steps": [{"strategy": "prunning"}], "targets": ["ort-gpu"]}
    with pytest.raises(PlanValidationError) as info:
        load_plan(_write(tmp_path, bad), build_registry())
    message = str(info.value)
    assert "steps[0].strategy = 'prunning': unknown strategy" in message
    assert "targets[0].target = 'ort-gpu': unknown target; installed:" in message and "ort-cpu" in message


def test_strategy_params_are_validated_by_the_plugin(tmp_path: Path, testing_plugins: str) -> None:
    bad = {**EXAMPLE, "steps": [{"strategy": "test-noise", "params": {"std": -1, "colour": "red"}}]}
    with pytest.raises(PlanValidationError) as info:
        load_plan(_write(tmp_path, bad), build_registry())
    message = str(info.value)
    assert "steps[0].params.std = -1: Input should be greater than or equal to 0" in message
    assert "steps[0].params.colour: Extra inputs are not permitted; accepted keys here: seed, std" in message


def test_target_options_are_validated_by_the_backend(tmp_path: Path) -> None:
    bad = {**EXAMPLE, "targets": [{"target": "ort-cpu", "options": {"intra_op_threads": 0}}]}
    with pytest.raises(PlanValidationError, match=r"targets\[0\].options.intra_op_threads = 0"):
        load_plan(_write(tmp_path, bad), build_registry())


def test_cross_references_are_checked(tmp_path: Path) -> None:
    bad = {**EXAMPLE, "evaluation": {"dataset": "nope"}}
    with pytest.raises(PlanValidationError, match=r"evaluation\.dataset .nope. is not in data"):
        load_plan(_write(tmp_path, bad), build_registry())


def test_latency_contract_needs_exactly_one_bound(tmp_path: Path) -> None:
    bad = {**EXAMPLE, "contracts": [{"kind": "latency", "max_ms": 1, "min_speedup": 2}]}
    with pytest.raises(PlanValidationError, match="set exactly one of max_ms or min_speedup"):
        load_plan(_write(tmp_path, bad), build_registry())


def test_plan_built_in_python(testing_plugins: str) -> None:
    from fakeplug_testing import NoiseParams

    plan = CompressionPlan(model=TorchModelSource(factory="model.py:build", input_shape=[1, 1, 32, 32]),
                           steps=[StepSpec(strategy="test-noise", params=NoiseParams(std=0.1))],
                           targets=[TargetSpec(target="ort-cpu")])
    validated = validate_plan(plan, build_registry())
    assert validated.steps[0].params.std == 0.1


def test_cli_validate_exit_codes(tmp_path: Path, example_dir: Path, capsys) -> None:
    assert main(["validate", str(example_dir / "plan.yaml")]) == 0
    assert main(["validate", str(_write(tmp_path, {**EXAMPLE, "bogus": 1}))]) == 2
    assert "bogus" in capsys.readouterr().err
    assert main(["validate", str(tmp_path / "missing.yaml")]) == 2


def test_schema_includes_strategy_params(testing_plugins: str, capsys) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    steps = schema["properties"]["steps"]["items"]["oneOf"]
    noise = next(v for v in steps if v["properties"]["strategy"]["const"] == "test-noise")
    assert "std" in noise["properties"]["params"]["properties"]
    targets = schema["properties"]["targets"]["items"]["oneOf"]
    assert any(v.get("properties", {}).get("target", {}).get("const") == "ort-cpu" for v in targets)


def test_missing_kind_lists_accepted_kinds(tmp_path: Path) -> None:
    bad = {**EXAMPLE, "model": {"factory": "model.py:build", "input_shape": [1, 1, 32, 32]},
           "data": {"test": {"split": "test"}}}
    with pytest.raises(PlanValidationError) as info:
        load_plan(_write(tmp_path, bad), build_registry())
    message = str(info.value)
    assert "model.kind is missing; installed kinds: " in message and "onnx, torch" in message
    assert "data.test.kind is missing; installed kinds: digits, factory, image-folder, npz, text" in message


def test_unknown_kinds_list_the_installed_ones(tmp_path: Path) -> None:
    bad = {**EXAMPLE, "model": {"kind": "tflite", "path": "m.tflite"},
           "data": {"test": {"kind": "csv", "path": "x.csv"}}}
    with pytest.raises(PlanValidationError) as info:
        load_plan(_write(tmp_path, bad), build_registry())
    message = str(info.value)
    assert "model.kind = 'tflite': unknown model source kind; installed kinds:" in message
    assert "data.test.kind = 'csv': unknown dataset kind; installed kinds: digits" in message


def test_kind_params_are_strict_and_named(tmp_path: Path) -> None:
    bad = {**EXAMPLE, "model": {**EXAMPLE["model"], "input_shap": [1, 1, 32, 32]},
           "data": {"test": {"kind": "digits", "split": "test", "imagesize": 8}}}
    with pytest.raises(PlanValidationError) as info:
        load_plan(_write(tmp_path, bad), build_registry())
    message = str(info.value)
    assert "model.input_shap: Extra inputs are not permitted" in message
    assert "data.test.imagesize: Extra inputs are not permitted" in message
