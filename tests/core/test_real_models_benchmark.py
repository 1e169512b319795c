"""benchmarks/real_models.py --smoke: edgecraft and the peers on the real detector, end to end, every figure written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.realmodels]

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "real_models.py"


def test_real_models_benchmark_smoke(tmp_path: Path) -> None:
    out = tmp_path / "real.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--json", str(out)], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ov int8 nncf.quantize" in proc.stdout and "cpu:" in proc.stdout
    figures = json.loads(out.read_text())
    assert figures["smoke"] is True and figures["errors"] == {}
    assert set(figures["ov_int8_vs_nncf_latency_ratio"]) == {"det"}
    assert figures["ov_int8_vs_nncf_latency_ratio"]["det"] > 0
    assert figures["ov_fp32_static_vs_dynamic_latency_ratio"] > 0
    assert figures["ov_int8_vs_nncf_on_shipped_graph_latency_ratio"]["det"] > 0
    assert isinstance(figures["ov_int8_identical_to_nncf"]["det"], bool)
    assert 0 < figures["ov_int8_cosine"]["det"]["nncf"] <= 1.0 + 1e-6
    assert set(figures["int8_share"]) == {"det/ort", "det/ov"}
    for share in figures["int8_share"].values():  # the runtime's truth is read independently of the report
        assert share["runtime"] is not None and 0.0 <= share["runtime"] <= 1.0
    assert isinstance(figures["reported_int8_share_matches_runtime"], bool)
    assert {"cpu", "load_average", "rows"} <= set(figures)
