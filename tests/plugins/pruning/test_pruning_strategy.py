"""The plan-level contract of the ``pruning`` step: compile-time errors name the step (and layer), and a
plan runs end to end on ort-cpu."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from edgecraft.errors import CompileError, InputError
from edgecraft.plan.loading import validate_plan
from edgecraft.registry import build_registry
from edgecraft.runner import compile_all, prepare

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def registry() -> Any:
    return build_registry()


def _plan(registry: Any, params: dict[str, Any], *, model: dict[str, Any] | None = None,
          data: dict[str, Any] | None = None, **extra: Any) -> Any:
    doc = {
        "model": model or {"kind": "torch", "factory": "pruning_models:coupled", "input_shape": [1, 1, 32, 32]},
        "steps": [{"strategy": "pruning", "name": "prune", "params": params}],
        "targets": ["ort-cpu"],
        "data": data if data is not None else {"train": {"kind": "digits", "split": "train", "max_samples": 64}},
        **extra,
    }
    return validate_plan(doc, registry)


def _compile(registry: Any, params: dict[str, Any], **kw: Any) -> Any:
    plan = _plan(registry, params, **kw)
    return compile_all(prepare(plan, registry, HERE), ["ort-cpu"])["ort-cpu"]


def test_registered_and_resolves(registry: Any) -> None:
    compiled = _compile(registry, {"ratio": 0.5, "round_to": 4, "dataset": "train", "epochs": 1})
    step = compiled.steps[0]
    assert step.strategy == "pruning" and step.stage == "torch" and step.needs_data == ["train"]
    assert "torch-pruning" in step.implementation
    assert any("checked on the model structure" in n for n in step.notes)


@pytest.mark.parametrize("params, message", [
    ({"ratio": 1.0}, r"params.ratio = 1 .* 0 < ratio < 1"),
    ({"ratio": 1.5, "mode": "unstructured"}, r"params.ratio = 1.5"),
    ({}, "params.ratio is required"),
    ({"ratio": 0.5, "layer_ratios": {"branch": 1.0}}, r"layer_ratios\['branch'\] = 1 for layer 'branch'"),
    ({"ratio": 0.5, "epochs": 2}, "fine-tuning .* needs a dataset"),
    ({"ratio": 0.5, "importance": "taylor"}, "taylor .* needs a dataset"),
    ({"ratio": 0.5, "dataset": "missing", "epochs": 1}, "'missing' is not in the plan's data"),
    ({"ratio": 0.5, "pattern": "2:4"}, r"params \['pattern'\] do not apply to mode: structured"),
    ({"mode": "unstructured", "ratio": 0.5, "round_to": 8}, r"\['round_to'\] do not apply"),
    ({"mode": "unstructured", "pattern": "2:4", "ratio": 0.8}, "contradicts params.pattern 2:4"),
    ({"ratio": 0.5, "schedule": "gradual", "dataset": "train"}, "params.epochs is 0"),
    # layer-level, found on the model's structure at compile time:
    ({"ratio": 0.9}, "would remove every output channel of layer 'grouped'"),
    ({"ratio": 0.5, "layer_ratios": {"branch": 0.95}}, "would remove every output channel of layer 'branch'"),
    ({"ratio": 0.5, "round_to": 16}, "round_to=16"),
    ({"ratio": 0.5, "ignored_layers": ["nope.*"]}, "'nope.\\*' matches no layer"),
    ({"ratio": 0.5, "layer_ratios": {"head": 0.5}}, "layer 'head', which cannot be pruned"),
    ({"mode": "unstructured", "pattern": "2:4"}, "layer 'stem.0'.* multiple of 4"),
])
def test_compile_errors_name_the_step(registry: Any, params: dict[str, Any], message: str) -> None:
    with pytest.raises(CompileError, match=message) as info:
        _compile(registry, params)
    assert "steps[0] (prune)" in str(info.value)
    assert info.value.exit_code == 2


def test_onnx_model_source_is_a_compile_error(registry: Any, tmp_path: Path) -> None:
    import torch
    from pruning_models import coupled

    path = tmp_path / "m.onnx"
    torch.onnx.export(coupled(), (torch.zeros(1, 1, 32, 32),), str(path), dynamo=False)
    plan = _plan(registry, {"ratio": 0.5}, model={"kind": "onnx", "path": str(path)})
    with pytest.raises(CompileError, match=r"steps\[0\] \(prune\).*pruning works on the torch model"):
        compile_all(prepare(plan, registry, tmp_path), ["ort-cpu"])


def test_unknown_param_is_a_plan_error(registry: Any) -> None:
    with pytest.raises(InputError, match="sparsity"):
        _plan(registry, {"ratio": 0.5, "sparsity": 0.5})


@pytest.mark.slow
def test_structured_plan_runs_end_to_end_on_ort(registry: Any, tmp_path: Path) -> None:
    from edgecraft.runner import run_plan

    plan = _plan(registry, {"ratio": 0.5, "round_to": 4, "dataset": "train", "epochs": 1},
                 evaluation={"dataset": "test"}, latency={"repeats": 20, "rounds": 2, "warmup": 2},
                 data={"train": {"kind": "digits", "split": "train", "max_samples": 64},
                       "test": {"kind": "digits", "split": "test", "max_samples": 64}})
    report = run_plan(plan, registry, base_dir=HERE, cache_dir=tmp_path / "cache")
    target = report.targets[0]
    steps = target.compressed.steps
    details = steps[0]
    assert details["params_after"] < 0.5 * details["params_before"]
    assert details["onnx_dense_bytes"] < 0.6 * details["onnx_dense_bytes_before"]
    assert details["architecture"]["dw"]["groups"] == 8
    assert target.compressed.size_bytes < 0.6 * target.baseline.size_bytes
    _check_reload(Path(target.artifact), details["architecture"])


def _check_reload(artifact: Path, architecture: dict[str, Any]) -> None:
    """The artifact rebuilds the pruned model three ways, all agreeing: ONNX, torch.export program, class."""
    import numpy as np
    import onnxruntime as ort
    import torch
    from edgecraft.plugins.pruning import rebuild
    from pruning_models import coupled

    x = torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(3))  # the program is batch-1
    program = torch.export.load(str(artifact / "lineage" / "torch_model.pt2"))
    with torch.no_grad():
        from_program = program.module()(x).numpy()
    session = ort.InferenceSession(str(artifact / "lineage" / "model.onnx"), providers=["CPUExecutionProvider"])
    (from_onnx,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    np.testing.assert_allclose(from_onnx, from_program, rtol=1e-4, atol=1e-5)
    state = {k: v for k, v in program.state_dict.items()}
    state.update({k: v for k, v in program.constants.items() if isinstance(v, torch.Tensor)})
    rebuilt = rebuild.rebuild(coupled(), architecture, state)
    with torch.no_grad():
        np.testing.assert_allclose(rebuilt(x).numpy(), from_program, rtol=1e-4, atol=1e-5)
