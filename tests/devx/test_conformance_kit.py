"""The conformance kit (`edgecraft plugin check`, `edgecraft.testing`) on good and deliberately broken plugins."""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import pytest
from edgecraft.cli import main
from edgecraft.testing import ConformanceError, assert_conforms, check_plugin

REPO = Path(__file__).resolve().parents[2]

GOOD_AND_BROKEN = """
    from edgecraft import OnnxModel, Resolution, Stage, StepResult, Strategy, StrategyParams, hookimpl
    from pydantic import ConfigDict
    import shutil

    class Params(StrategyParams):
        factor: int = 1

    class LaxParams(StrategyParams):
        model_config = ConfigDict(extra="allow")

    class Copy(Strategy):
        name = "kit-copy"
        params_model = Params
        def resolve(self, params, ctx):
            if not ctx.target.has("onnx.graph"):
                raise ctx.error("only where the artifact is the ONNX file")
            return Resolution(Stage.ONNX, "copy", params)
        def apply(self, step, model, ctx):
            out = ctx.step_dir() / "copy.onnx"
            shutil.copyfile(model.path, out)
            return StepResult(OnnxModel(out, model.io), {"copied": True})

    class ReturnsNone(Copy):
        name = "kit-none"
        def apply(self, step, model, ctx):
            return None

    class BadDetails(Copy):
        name = "kit-bad-details"
        def apply(self, step, model, ctx):
            result = super().apply(step, model, ctx)
            return StepResult(result.model, {"array": object()})

    class Lax(Copy):
        name = "kit-lax"
        params_model = LaxParams

    @hookimpl
    def edgecraft_register_strategies(register):
        for cls in (Copy, ReturnsNone, BadDetails, Lax):
            register(cls)
"""


@pytest.fixture
def kit_plugins(fake_dist: Callable[..., None]) -> None:
    fake_dist("fakeplug-kit", "fakeplug_kit", GOOD_AND_BROKEN, entry_point="kit")


def test_a_conforming_strategy_passes_and_a_second_run_hits_the_cache(kit_plugins: None) -> None:
    report = assert_conforms("kit-copy", targets=["ort-cpu"])
    assert report.ok
    methods = {(f.method, f.outcome) for f in report.findings}
    assert {("params_model", "ok"), ("resolve()", "ok"), ("apply()", "ok"), ("cache", "ok")} <= methods
    assert any("multi model" in f.message for f in report.findings if f.method == "apply()")


def test_apply_returning_none_fails_with_a_clear_line(kit_plugins: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugin", "check", "kit-none", "--target", "ort-cpu"]) == 1
    out = capsys.readouterr().out
    fail_lines = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert fail_lines, out
    assert all("apply()" in line for line in fail_lines)
    assert "returned None; expected an edgecraft.strategy.StepResult" in fail_lines[0]
    assert "does not conform" in out
    with pytest.raises(ConformanceError, match="returned None"):
        assert_conforms("kit-none", targets=["ort-cpu"])


def test_details_that_are_not_json_are_a_violation(kit_plugins: None) -> None:
    report = check_plugin("kit-bad-details", targets=["ort-cpu"])
    assert not report.ok
    assert any("cannot be written to the JSON report" in f.message for f in report.violations)


def test_a_params_model_accepting_unknown_keys_is_a_violation(kit_plugins: None) -> None:
    report = check_plugin("kit-lax", targets=["ort-cpu"])
    assert [f.method for f in report.violations] == ["params_model"]
    assert "extra='forbid'" in report.violations[0].message


def test_refusals_are_clean_not_violations(kit_plugins: None) -> None:
    report = check_plugin("kit-copy", targets=["ort-cpu", "openvino-cpu"])
    assert report.ok
    assert any(f.outcome == "refused" and "openvino-cpu" in f.message for f in report.findings)


def test_unknown_name_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugin", "check", "no-such-plugin"]) == 2
    err = capsys.readouterr().err
    assert "nothing installed is named 'no-such-plugin'" in err and "metrics: " in err and "devices: " in err


def test_builtin_backend_conforms() -> None:
    report = assert_conforms("onnxruntime")
    messages = " ".join(f.message for f in report.findings)
    assert "matches onnxruntime within" in messages and "(multi model)" in messages


BROKEN_BACKEND = """
    import numpy as np
    from edgecraft import hookimpl
    from edgecraft.backends.onnxruntime.backend import OnnxRuntimeBackend

    class Wrong(OnnxRuntimeBackend):
        name = "kit-wrong-backend"
        def targets(self):
            from dataclasses import replace
            return [replace(t, name="kit-wrong") for t in super().targets() if t.name == "ort-cpu"]
        def load(self, artifact_dir, target, options, threads):
            session = super().load(artifact_dir, "ort-cpu", options, threads)
            original = session.run
            session.run = lambda feeds: [o + 1.0 for o in original(feeds)]
            return session

    @hookimpl
    def edgecraft_register_backends(register):
        register(Wrong)
"""


def test_a_backend_whose_outputs_differ_fails_naming_run(fake_dist: Callable[..., None],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    fake_dist("fakeplug-kitbackend", "fakeplug_kitbackend", BROKEN_BACKEND, entry_point="kitbackend")
    assert main(["plugin", "check", "kit-wrong-backend"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "Session.run()" in out and "differ from onnxruntime's" in out


def test_example_packages_conform_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """The two packages under integration/ pass the kit (also checked pip-installed, and by .ci/run)."""
    plugins = []
    try:
        metadata.distribution("edgecraft-fp16-weights")
    except metadata.PackageNotFoundError:
        for name in ("example-strategy-plugin", "example-backend-plugin"):
            monkeypatch.syspath_prepend(str(REPO / "integration" / name / "src"))
        import edgecraft_fp16_weights.plugin as strategy_plugin
        import edgecraft_onnx_reference.plugin as backend_plugin

        plugins = [strategy_plugin, backend_plugin]
    assert_conforms("fp16-weights", plugins=plugins, targets=["onnx-reference", "ort-cpu"])
    assert_conforms("onnx-reference", plugins=plugins)
    for name in [m for m in sys.modules if m.startswith(("edgecraft_fp16", "edgecraft_onnx_ref"))]:
        if plugins:
            del sys.modules[name]


def test_source_hash_follows_a_plugin_in_development(fake_dist: Callable[..., None], tmp_path: Path) -> None:
    """A plugin outside site-packages (here: a test's site folder) is keyed by its source, not only its version."""
    from edgecraft.registry import build_registry

    fake_dist("fakeplug-kit", "fakeplug_kit", GOOD_AND_BROKEN, entry_point="kit")
    tag = build_registry().strategies["kit-copy"].provenance.cache_tag()
    assert tag.startswith("fakeplug-kit==1.0+src.")
    source = tmp_path / "site" / "fakeplug_kit.py"
    source.write_text(source.read_text() + "\n# edited, version not bumped\n")
    assert build_registry().strategies["kit-copy"].provenance.cache_tag() != tag


def test_editable_detection_reads_direct_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgecraft import dev_cache

    info = tmp_path / "fakeplug_ed-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplug-ed\nVersion: 1.0\n")
    (info / "direct_url.json").write_text('{"url": "file:///src", "dir_info": {"editable": true}}')
    monkeypatch.syspath_prepend(str(tmp_path))
    assert dev_cache.is_editable("fakeplug-ed")
    (info / "direct_url.json").write_text('{"url": "file:///src", "dir_info": {}}')
    assert not dev_cache.is_editable("fakeplug-ed")
