"""benchmarks/arm.py --smoke: the script runs end to end, prints its table and writes every figure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.executorch, pytest.mark.slow, pytest.mark.aarch64]  # the last group runs on the board

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "arm.py"


def test_smoke_run_writes_the_figures(tmp_path: Path) -> None:
    out = tmp_path / "arm.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--json", str(out)], capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    for key in ("executorch_int8_speedup_host", "executorch_vs_ort_int8_latency_ratio_host"):
        assert data[key] > 0, key
    assert 0 <= data["executorch_int8_top1_drop_pt"] <= 100
    assert data["smoke"] is True and "int8" in data["cpu"]  # the CPU's int8 features are recorded
    precisions = {(r["runtime"], r["precision"]): r["described_precision"] for r in data["rows"]
                  if r["model"] != "digits-resnet"}
    assert precisions[("executorch", "int8")] == "int8" and precisions[("executorch", "fp32")] == "fp32"
    assert "executorch_int8_speedup_host" in proc.stdout and "described_precision" in proc.stdout
    # the emulated board's group: accuracy judged on the board, the same int8 .pte on ARM vs x86
    assert 0 <= data["executorch_arm_int8_top1_drop_pt"] <= 100
    assert data["arm_vs_x86_int8_max_abs_diff"]["executorch"] >= 0
    assert data["executorch_arm_vs_x86_samples"] == 64
    assert data["board"]["qemu_cpu"] == "cortex-a76" and data["board"]["cpu_features"]["asimddp"] is True
    assert data["board"]["runtime"].startswith("executorch 1.5.1 C++ runtime (aarch64")
    board_rows = {r["precision"]: r for r in data["rows"] if r["group"] == "board"}
    assert board_rows["int8"]["described_precision"] == "int8" and board_rows["fp32"]["described_precision"] == "fp32"
