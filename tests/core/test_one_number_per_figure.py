"""One number per figure (issue 26, item 7): the terminal shows the speedup the verdict used and what it measured."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from edgecraft.cli import main


def matmul_model(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
                              "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 256])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 256])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.slow
def test_terminal_shows_the_verdicts_speedup_and_no_tail_ratios(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    matmul_model(tmp_path / "m.onnx")
    np.savez(tmp_path / "calib.npz", x=np.random.default_rng(1).standard_normal((8, 256)).astype(np.float32))
    plan = {"name": "one-number", "model": {"kind": "onnx", "path": "m.onnx"},
            "data": {"calib": {"kind": "npz", "path": "calib.npz", "labels": None}},
            "steps": [{"strategy": "quantization", "params": {"mode": "dynamic", "calibration_dataset": "calib"}}],
            "targets": ["ort-cpu"], "latency": {"warmup": 2, "repeats": 20, "rounds": 6, "threads": 1},
            "contracts": [{"kind": "latency", "min_speedup": 0.01}]}
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan))
    code = main(["run", str(tmp_path / "plan.yaml"), "--cache-dir", str(tmp_path / "cache"),
                 "--report-json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert code == 0, out
    [verdict] = json.loads((tmp_path / "r.json").read_text())["targets"][0]["contracts"]
    assert verdict["measured_as"].startswith(("wall-clock", "CPU time"))
    basis = "CPU time" if verdict["measured_as"].startswith("CPU") else "wall clock"
    p50 = next(line for line in out.splitlines() if "latency p50 (ms, wall clock)" in line)
    # the ratio cell is the verdict's number, labelled with what it measured; there is no second speedup
    assert f"{verdict['measured']:.2f}x ({basis}, judged)" in p50
    p95 = next(line for line in out.splitlines() if "latency p95 (ms, wall clock)" in line)
    assert not re.search(r"\d\.\d\dx", p95)
    assert "latency p99" not in out
