"""The conformance kit on the breakages a run survives and a report then misstates: one deliberately broken
plugin per case, each caught with a one-line reason naming the method; and the kit's own bugs (a broken
backend beside a good strategy, `plugin check DISTRIBUTION`, the scaffold's built-in names, apply_inputs)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from edgecraft.cli import main
from edgecraft.errors import InputError
from edgecraft.testing import CNN, MULTI, apply_inputs, assert_conforms, check_plugin

BROKEN_STRATEGIES = """
    import math, shutil
    import onnx
    import torch
    from edgecraft import OnnxModel, Resolution, Stage, StepResult, Strategy, StrategyParams, hookimpl
    from edgecraft.models import TorchModel

    class Params(StrategyParams):
        factor: int = 1

    class Onnx(Strategy):
        params_model = Params
        def resolve(self, params, ctx):
            if not ctx.target.has("onnx.graph"):
                raise ctx.error("only where the artifact is the ONNX file")
            return Resolution(Stage.ONNX, "copy", params)

    class Copy(Onnx):
        name = "kit-good-copy"
        def apply(self, step, model, ctx):
            out = ctx.step_dir() / "copy.onnx"
            shutil.copyfile(model.path, out)
            return StepResult(OnnxModel(out, model.io), {"copied": True})

    class Unchanged(Onnx):
        name = "kit-unchanged"
        def apply(self, step, model, ctx):
            return StepResult(model, {})

    class InPlace(Onnx):
        name = "kit-in-place"
        def apply(self, step, model, ctx):
            graph = onnx.load(str(model.path))
            graph.doc_string = "edited in place"
            onnx.save(graph, str(model.path))
            out = ctx.step_dir() / "copy.onnx"
            shutil.copyfile(model.path, out)
            return StepResult(OnnxModel(out, model.io), {})

    class Renamed(Onnx):
        name = "kit-renamed"
        def apply(self, step, model, ctx):
            graph = onnx.load(str(model.path))
            old = graph.graph.output[0].name
            for node in graph.graph.node:
                node.output[:] = ["scores" if o == old else o for o in node.output]
            graph.graph.output[0].name = "scores"
            out = ctx.step_dir() / "renamed.onnx"
            onnx.save(graph, str(out))
            return StepResult(OnnxModel(out, model.io), {})

    class NaNDetails(Onnx):
        name = "kit-nan"
        def apply(self, step, model, ctx):
            out = ctx.step_dir() / "copy.onnx"
            shutil.copyfile(model.path, out)
            return StepResult(OnnxModel(out, model.io), {"ratio": math.nan})

    class Narrow(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner
        def forward(self, *inputs):
            return self.inner(*inputs)[:, :2]

    class Reshaped(Strategy):
        name = "kit-reshaped"
        params_model = Params
        def resolve(self, params, ctx):
            return Resolution(Stage.TORCH, "narrow", params)
        def apply(self, step, model, ctx):
            return StepResult(TorchModel(Narrow(model.module), model.io), {})

    @hookimpl
    def edgecraft_register_strategies(register):
        for cls in (Copy, Unchanged, InPlace, Renamed, NaNDetails, Reshaped):
            register(cls)
"""


@pytest.fixture
def broken(fake_dist: Callable[..., None]) -> None:
    fake_dist("fakeplug-broken", "fakeplug_broken", BROKEN_STRATEGIES, entry_point="broken")


@pytest.mark.parametrize(("name", "reason"), [
    ("kit-unchanged", "returned its input model unchanged"),
    ("kit-in-place", "edited its input ONNX file"),
    ("kit-renamed", "its model's outputs are [('scores'"),
    ("kit-nan", "details hold a non-finite number at details['ratio']"),
    ("kit-reshaped", "its model's outputs are [('logits', ('batch', 2))]"),
])
def test_a_broken_strategy_is_caught_with_a_one_line_reason(broken: None, name: str, reason: str,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugin", "check", name, "--target", "ort-cpu"]) == 1
    fails = [line for line in capsys.readouterr().out.splitlines() if line.startswith("FAIL")]
    assert fails and all(f"strategy {name!r}: apply(): on ort-cpu" in line for line in fails), fails
    assert any(reason in line for line in fails), fails


BROKEN_BACKENDS = """
    import numpy as np
    from dataclasses import replace
    from edgecraft import hookimpl
    from edgecraft.backend import Session
    from edgecraft.backends.onnxruntime.backend import OnnxRuntimeBackend

    class Reversed(Session):
        def __init__(self, inner):
            self.inner = inner
        @property
        def input_names(self):
            return list(reversed(self.inner.input_names))
        def run(self, feeds):
            return self.inner.run(feeds)
        def close(self):
            self.inner.close()

    class Float64(OnnxRuntimeBackend):
        name = "kit-float64"
        def targets(self):
            return [replace(t, name="kit-f64") for t in super().targets() if t.name == "ort-cpu"]
        def load(self, artifact_dir, target, options, threads):
            session = super().load(artifact_dir, "ort-cpu", options, threads)
            original = session.run
            session.run = lambda feeds: [o.astype(np.float64) for o in original(feeds)]
            return session

    class Order(OnnxRuntimeBackend):
        name = "kit-order"
        def targets(self):
            return [replace(t, name="kit-ord") for t in super().targets() if t.name == "ort-cpu"]
        def load(self, artifact_dir, target, options, threads):
            return Reversed(super().load(artifact_dir, "ort-cpu", options, threads))

    class Unloadable(OnnxRuntimeBackend):
        name = "kit-unloadable"
        def targets(self):
            return [replace(t, name="kit-unloadable") for t in super().targets() if t.name == "ort-cpu"]
        def load(self, artifact_dir, target, options, threads):
            raise RuntimeError("this backend is broken")

    class Dequantizes(OnnxRuntimeBackend):
        # claims ort-cpu's int8 tags, but saves and runs with ONNX Runtime's graph optimizations off, so a QDQ
        # graph is never fused into integer kernels: it dequantizes and runs Conv/Gemm in float
        name = "kit-dequantizes"
        def targets(self):
            return [replace(t, name="kit-dequant") for t in super().targets() if t.name == "ort-cpu"]
        def save(self, native, target, options, out_dir):
            off = options.model_copy(update={"saved_optimization": "disable", "runtime_optimization": "disable"})
            return super().save(native, "ort-cpu", off, out_dir)
        def load(self, artifact_dir, target, options, threads):
            off = options.model_copy(update={"saved_optimization": "disable", "runtime_optimization": "disable"})
            return super().load(artifact_dir, "ort-cpu", off, threads)

    @hookimpl
    def edgecraft_register_backends(register):
        for cls in (Float64, Order, Unloadable, Dequantizes):
            register(cls)
"""


@pytest.fixture
def broken_backends(fake_dist: Callable[..., None]) -> None:
    fake_dist("fakeplug-brokenbackends", "fakeplug_brokenbackends", BROKEN_BACKENDS, entry_point="brokenbackends")


@pytest.mark.parametrize(("name", "method", "reason"), [
    ("kit-float64", "Session.run()", "output 0 is float64; expected the model's float32"),
    ("kit-order", "Session.input_names", "lists the inputs as ['ids', 'x']; expected the model's order ['x', 'ids']"),
    ("kit-dequantizes", "int8", "but its runtime ran every compute layer of an int8 QDQ graph in float"),
])
def test_a_broken_backend_is_caught_with_a_one_line_reason(broken_backends: None, name: str, method: str,
                                                           reason: str) -> None:
    report = check_plugin(name)
    assert not report.ok
    assert any(f.method == method and reason in f.message for f in report.violations), report.lines()


def test_a_broken_backend_beside_a_good_strategy_does_not_fail_it(broken: None, broken_backends: None) -> None:
    report = assert_conforms("kit-good-copy")  # built-in targets by default
    assert any(f.outcome == "note" and "kit-unloadable" in f.message for f in report.findings)
    named = check_plugin("kit-good-copy", targets=["ort-cpu", "kit-unloadable"])
    assert not named.ok
    assert all("target of backend 'kit-unloadable' from fakeplug-brokenbackends" in f.message
               for f in named.violations), named.lines()


def test_plugin_check_a_distribution_checks_every_plugin_of_it(broken_backends: None,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugin", "check", "fakeplug-brokenbackends", "--target", "kit-f64", "--target", "kit-ord",
                 "--target", "kit-unloadable", "--target", "kit-dequant"]) == 1
    out = capsys.readouterr().out
    for name in ("kit-float64", "kit-order", "kit-unloadable", "kit-dequantizes"):
        assert f"backend {name!r} from fakeplug-brokenbackends" in out


def test_plugin_new_refuses_a_builtin_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edgecraft.scaffold import create

    for name, what in (("pruning", "strategy"), ("ort-cpu", "target"), ("onnxruntime", "backend")):
        with pytest.raises(InputError, match=f"is a built-in {what}'s name"):
            create("strategy", name, tmp_path / name)
        assert not (tmp_path / name).exists()
    assert main(["plugin", "new", "strategy", "quantization", str(tmp_path / "q")]) == 2
    assert "built-in" in capsys.readouterr().err


def test_apply_inputs_is_what_the_builder_passes(broken: None, tmp_path: Path) -> None:
    from edgecraft.models import OnnxModel

    inputs = apply_inputs("kit-good-copy", model=MULTI, work_dir=tmp_path)
    assert isinstance(inputs.model, OnnxModel) and inputs.ctx.io.input_names == ["x", "ids"]
    assert inputs.ctx.target.label == "ort-cpu" and len(inputs.ctx.dataset("kit")) == 16
    result = inputs.apply()
    assert result.details == {"copied": True} and result.model.path.parent == inputs.ctx.step_dir()
    assert apply_inputs("kit-good-copy", model=CNN, work_dir=tmp_path / "cnn").model.io.input_names == ["input"]
