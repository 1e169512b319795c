"""A whole plan on tvm-aarch64 through the CLI: emulated latency needs an explicit opt-in, reports say so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from edgecraft.errors import EXIT_BAD_INPUT, EXIT_OK

pytestmark = pytest.mark.tvm

NET = '''
import torch
from torch import nn


def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 10)).eval()
'''


def _plan(tmp_path: Path, contract: dict, device_cache: Path | None = None) -> Path:
    (tmp_path / "net.py").write_text(NET)
    options: dict = {"cpu": "cortex-a72"}
    if device_cache is not None:
        options["device_cache_dir"] = str(device_cache)
    plan = {
        "schema": "edgecraft.plan/v1",
        "name": "tvm-e2e",
        "model": {"kind": "torch", "factory": "net.py:build", "input_shape": [1, 1, 8, 8],
                  "exporter": "torchscript", "opset": 17},
        "data": {"digits": {"kind": "digits", "image_size": 8, "max_samples": 32}},
        "evaluation": {"dataset": "digits", "metrics": ["agreement"], "batch_size": 16},
        "latency": {"warmup": 2, "repeats": 10, "rounds": 2, "threads": 1},
        "targets": [{"target": "tvm-aarch64", "options": options}],
        "contracts": [contract],
    }
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


@pytest.mark.aarch64
def test_latency_contract_on_emulated_device_needs_opt_in(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edgecraft.cli import main

    plan = _plan(tmp_path, {"kind": "latency", "max_ms": 50})
    code = main(["run", str(plan), "--cache-dir", str(tmp_path / "cache")])
    assert code == EXIT_BAD_INPUT
    assert "emulated device" in capsys.readouterr().err


@pytest.mark.slow
def test_plan_runs_on_emulated_device(emulated_device, tmp_path: Path) -> None:
    from edgecraft.cli import main

    plan = _plan(tmp_path, {"kind": "latency", "max_ms": 1000, "allow_emulated": True},
                 device_cache=emulated_device.home.parent)
    report = tmp_path / "report.json"
    code = main(["run", str(plan), "--cache-dir", str(tmp_path / "cache"), "--report-json", str(report)])
    assert code == EXIT_OK
    (target,) = json.loads(report.read_text())["targets"]
    assert target["emulated"] is True
    assert target["device"]["device"] == "arm64-emulated" and target["device"]["emulated"] is True
    assert target["device"]["host_check_max_abs_diff"] < 1e-4
    assert target["compressed"]["metrics"]["agreement"] == 1.0
    (verdict,) = target["contracts"]
    assert verdict["emulated"] is True
