"""Issue 26 item 6: cosine over a transformer's token output counted padding; masked and pooled cosine do not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from edgecraft.errors import InputError
from edgecraft.metrics import Metric
from edgecraft.registry import build_registry
from edgecraft.verify.measure import compute_metrics


@pytest.fixture(scope="module")
def metrics() -> dict[str, Metric]:
    registry = build_registry()
    return {name: registry.metric(name) for name in ("cosine", "masked_cosine", "pooled_cosine")}


def _masked(metric: Metric, *args: Any, mask: np.ndarray) -> float:
    """A masked metric's compute, which takes ``mask=`` (the Metric type declares the three-argument form)."""
    compute: Any = metric.compute
    return float(compute(*args, mask=mask))


def _padded(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two sentences of 3 and 5 real tokens padded to 16: the candidate is wrong on every real token and exact
    on the padding (which a model's padding output typically is: the same constant-ish vectors)."""
    mask = np.zeros((2, 16), np.int64)
    mask[0, :3] = 1
    mask[1, :5] = 1
    reference = rng.normal(size=(2, 16, 8)).astype(np.float32)
    candidate = reference.copy()
    candidate[mask == 1] = rng.normal(size=(8, 8)).astype(np.float32)  # unrelated vectors on the real tokens
    return candidate, reference, mask


def test_padding_inflates_plain_cosine_and_the_masked_ones_leave_it_out(metrics: dict[str, Metric]) -> None:
    candidate, reference, mask = _padded(np.random.default_rng(0))
    plain = metrics["cosine"].compute(candidate, None, reference)
    masked = _masked(metrics["masked_cosine"], candidate, None, reference, mask=mask)
    pooled = _masked(metrics["pooled_cosine"], candidate, None, reference, mask=mask)
    assert plain > 0.6  # 24 of 32 positions are exact padding
    assert abs(masked) < 0.5 and abs(pooled) < 0.8  # the real tokens are unrelated
    same = _masked(metrics["masked_cosine"], reference, None, reference, mask=mask)
    assert same == pytest.approx(1.0)


def test_masked_cosine_is_the_mean_over_real_tokens_and_pooled_is_after_mean_pooling(
        metrics: dict[str, Metric]) -> None:
    reference = np.zeros((1, 3, 2), np.float32)
    reference[0] = [[1, 0], [0, 1], [5, 5]]
    candidate = np.zeros((1, 3, 2), np.float32)
    candidate[0] = [[1, 0], [1, 0], [-5, 5]]  # token 0 exact, token 1 orthogonal, token 2 is padding
    mask = np.array([[1, 1, 0]])
    assert _masked(metrics["masked_cosine"], candidate, None, reference, mask=mask) == pytest.approx(0.5)
    # pooled: mean([1,0],[1,0]) = [1,0] vs mean([1,0],[0,1]) = [.5,.5]: cosine 1/sqrt(2)
    assert _masked(metrics["pooled_cosine"], candidate, None, reference, mask=mask) == pytest.approx(2 ** -0.5)


def test_masked_metrics_need_the_mask_input_and_a_token_output(metrics: dict[str, Metric]) -> None:
    out = {"last_hidden_state": np.ones((2, 4, 3), np.float32)}
    with pytest.raises(InputError, match=r"evaluation\.mask_input"):
        compute_metrics(out, None, [metrics["masked_cosine"]], out, primary="last_hidden_state", dataset="d")
    pooled = {"sentence_embedding": np.ones((2, 3), np.float32)}
    with pytest.raises(InputError, match="per-token output") as err:
        compute_metrics(pooled, None, [metrics["pooled_cosine"]], pooled, primary="sentence_embedding",
                        dataset="d", mask=np.ones((2, 4)))
    assert "dataset 'd'" in err.value.message
    with pytest.raises(InputError, match="no token in the mask"):
        compute_metrics(out, None, [metrics["masked_cosine"]], out, primary="last_hidden_state", dataset="d",
                        mask=np.array([[1, 1, 0, 0], [0, 0, 0, 0]]))
    got = compute_metrics(out, None, [metrics["masked_cosine"], metrics["cosine"]], out, primary="last_hidden_state",
                          mask=np.array([[1, 1, 0, 0], [1, 0, 0, 0]]))
    assert got == {"masked_cosine": pytest.approx(1.0), "cosine": pytest.approx(1.0)}


def _token_model(path: Path) -> Path:
    """y = x @ W per token (a stand-in for a transformer's last_hidden_state), with an attention-mask input."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.random.default_rng(0).normal(size=(8, 8)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Cast", ["mask"], ["m"], to=1),
         helper.make_node("Unsqueeze", ["m", "axes"], ["m3"]), helper.make_node("Mul", ["h", "m3"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 6, 8]),
         helper.make_tensor_value_info("mask", TensorProto.INT64, ["batch", 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 6, 8])],
        [weight, numpy_helper.from_array(np.array([2], np.int64), "axes")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _plan(tmp: Path, evaluation: dict[str, Any]) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    mask = (np.arange(6)[None, :] < rng.integers(2, 6, size=(12, 1))).astype(np.int64)
    np.savez(tmp / "data.npz", x=rng.normal(size=(12, 6, 8)).astype(np.float32), mask=mask)
    return {"name": "masked", "model": {"kind": "onnx", "path": str(_token_model(tmp / "m.onnx"))},
            "data": {"d": {"kind": "npz", "path": "data.npz", "labels": None}},
            "evaluation": {"dataset": "d", **evaluation},
            "steps": [{"strategy": "quantization", "params": {"mode": "dynamic", "recipe": "transformer"}}],
            "latency": {"warmup": 1, "repeats": 10, "rounds": 2, "threads": 1}, "targets": ["ort-cpu"],
            "contracts": [{"kind": "accuracy", "metric": "masked_cosine", "max_drop": 0.05}]}


def _run(tmp: Path, plan: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
    import json

    import yaml
    from edgecraft.cli import main

    (tmp / "plan.yaml").write_text(yaml.safe_dump(plan))
    report = tmp / "report.json"
    code = main(["run", str(tmp / "plan.yaml"), "--report-json", str(report), "--cache-dir", str(tmp / "cache"), "-q"])
    return code, json.loads(report.read_text()) if report.exists() else None


def test_a_plan_judges_masked_and_pooled_cosine_with_its_mask_input(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    plan = _plan(tmp_path, {"metrics": ["masked_cosine", "pooled_cosine", "cosine"], "mask_input": "mask",
                            "output": "y"})
    code, report = _run(tmp_path, plan)
    assert code == 0, capsys.readouterr().err
    assert report is not None
    metrics = report["targets"][0]["compressed"]["metrics"]
    assert 0.95 < metrics["masked_cosine"] <= 1.0 and 0.95 < metrics["pooled_cosine"] <= 1.0
    assert report["targets"][0]["baseline"]["metrics"]["masked_cosine"] == pytest.approx(1.0)


@pytest.mark.parametrize(("evaluation", "message"), [
    ({"metrics": ["masked_cosine"]}, "evaluation.mask_input"),
    ({"metrics": ["masked_cosine"], "mask_input": "attention_mask"}, "no such input"),
])
def test_a_plan_without_a_usable_mask_input_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             evaluation: dict[str, Any], message: str) -> None:
    code, _ = _run(tmp_path, _plan(tmp_path, evaluation))
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
