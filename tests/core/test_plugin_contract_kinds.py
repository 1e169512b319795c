"""A contract kind a third party registers is written in a plan like a built-in one, judged, and reported."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from edgecraft.errors import EXIT_BAD_INPUT, EXIT_CONTRACT_FAILED, EXIT_OK

from tests.core.test_core_run import plan_dict, run_cli


@pytest.fixture
def workdir(tmp_path: Path, example_dir: Path) -> Path:
    for name in ("model.py", "digits_resnet.pt"):
        shutil.copy(example_dir / name, tmp_path / name)
    return tmp_path


@pytest.mark.slow
def test_a_plugin_contract_kind_is_judged_both_ways(workdir: Path, testing_plugins: str) -> None:
    code, report = run_cli(workdir, plan_dict(contracts=[{"kind": "test-max-kb", "max_kb": 100_000},
                                                         {"kind": "test-max-kb", "max_kb": 1, "name": "tiny"}]))
    assert code == EXIT_CONTRACT_FAILED and report is not None
    loose, tiny = report["targets"][0]["contracts"]
    assert loose["kind"] == "test-max-kb" and loose["status"] == "pass" and loose["unit"] == "kB"
    assert tiny["name"] == "tiny" and tiny["status"] == "fail" and tiny["measured"] > 1
    code, report = run_cli(workdir, plan_dict(contracts=[{"kind": "test-max-kb", "max_kb": 100_000}]))
    assert code == EXIT_OK and report is not None and report["passed"] is True


def test_a_plugin_contract_kind_is_validated_by_its_own_model(workdir: Path, testing_plugins: str,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run_cli(workdir, plan_dict(contracts=[{"kind": "test-max-kb", "max_kb": -3, "colour": "red"}]))
    assert code == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "contracts[0].max_kb = -3" in err and "contracts[0].colour" in err and "accepted keys here" in err


def test_an_unknown_contract_kind_names_the_installed_ones(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run_cli(workdir, plan_dict(contracts=[{"kind": "energy", "max_j": 1}]))
    assert code == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "contracts[0].kind = 'energy': unknown contract kind; installed: accuracy, compute, latency" in err
