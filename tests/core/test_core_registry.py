"""Plugin discovery: entry points, provenance, conflicts, allow-lists, bad plugins."""

from __future__ import annotations

import pytest
from edgecraft.cli import main
from edgecraft.errors import InputError, PluginError
from edgecraft.registry import build_registry


def test_builtin_backend_registers_through_entry_point() -> None:
    registry = build_registry()
    assert "ort-cpu" in registry.targets
    prov = registry.targets["ort-cpu"].provenance
    assert prov.distribution == "edgecraft" and prov.plugin == "onnxruntime"
    assert {"top1", "agreement", "cosine"} <= set(registry.metrics)


def test_third_party_strategy_is_discovered(testing_plugins: str) -> None:
    registry = build_registry()
    assert registry.strategies["test-noise"].provenance.distribution == testing_plugins


def test_duplicate_target_names_both_distributions(fake_dist) -> None:
    fake_dist("fakeplug-dup", "fakeplug_dup", """
        from edgecraft.hookspecs import hookimpl
        from edgecraft.backends.onnxruntime.backend import OnnxRuntimeBackend

        class Copy(OnnxRuntimeBackend):
            name = "copycat"

        @hookimpl
        def edgecraft_register_backends(register):
            register(Copy)
    """)
    with pytest.raises(PluginError) as info:
        build_registry()
    message = str(info.value)
    assert "'ort-cpu' is registered twice" in message
    assert "fakeplug-dup" in message and "edgecraft 0.1.0" in message


def test_duplicate_strategy_names_both_distributions(fake_dist, testing_plugins: str) -> None:
    fake_dist("fakeplug-noise2", "fakeplug_noise2", """
        from edgecraft.hookspecs import hookimpl
        import fakeplug_testing

        @hookimpl
        def edgecraft_register_strategies(register):
            register(fakeplug_testing.NoiseStrategy)
    """)
    with pytest.raises(PluginError, match="'test-noise' is registered twice") as info:
        build_registry()
    assert "fakeplug-noise2" in str(info.value) and testing_plugins in str(info.value)


def test_misspelled_hook_is_an_error(fake_dist) -> None:
    fake_dist("fakeplug-typo", "fakeplug_typo", """
        from edgecraft.hookspecs import hookimpl

        @hookimpl
        def edgecraft_register_strategys(register):
            pass
    """)
    with pytest.raises(PluginError, match="edgecraft_register_strategys"):
        build_registry(strict=True)
    registry = build_registry()
    assert "edgecraft_register_strategys" in registry.broken["fakeplug_typo"].reason
    assert "ort-cpu" in registry.targets


def test_plugin_raising_during_registration_is_exit_3_under_strict(fake_dist, capsys) -> None:
    fake_dist("fakeplug-raise", "fakeplug_raise", """
        from edgecraft.hookspecs import hookimpl

        @hookimpl
        def edgecraft_register_backends(register):
            raise RuntimeError("no licence server")
    """)
    assert main(["--strict-plugins", "plugins"]) == 3
    err = capsys.readouterr().err
    assert "fakeplug_raise" in err and "fakeplug-raise" in err and "no licence server" in err


def test_plugin_failing_to_import_is_exit_3_under_strict(fake_dist, capsys) -> None:
    fake_dist("fakeplug-broken", "fakeplug_broken", "import no_such_module_anywhere\n")
    assert main(["--strict-plugins", "plugins"]) == 3
    assert "fakeplug-broken" in capsys.readouterr().err


def test_registering_a_non_strategy_is_a_plugin_error(fake_dist) -> None:
    fake_dist("fakeplug-wrong", "fakeplug_wrong", """
        from edgecraft.hookspecs import hookimpl

        @hookimpl
        def edgecraft_register_strategies(register):
            register(object)
    """)
    with pytest.raises(PluginError, match=r"not a subclass of edgecraft\.Strategy"):
        build_registry(strict=True)
    assert "not a subclass of edgecraft.Strategy" in build_registry().broken["fakeplug_wrong"].reason


def test_allowlist_loads_only_listed_plugins(fake_dist, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dist("fakeplug-raise", "fakeplug_raise", """
        from edgecraft.hookspecs import hookimpl

        @hookimpl
        def edgecraft_register_backends(register):
            raise RuntimeError("must not be loaded")
    """)
    monkeypatch.setenv("EDGECRAFT_PLUGINS", "onnxruntime")
    registry = build_registry()
    assert set(registry.targets) == {"ort-cpu", "ort-aarch64"}  # the onnxruntime plugin's two targets
    assert not registry.strategies


def test_allowlist_keeps_the_core_plugins() -> None:
    """Restricting plugins narrows the optional ones: the built-in sources, datasets and metrics every plan
    needs stay, attributed to their entry points of the edgecraft distribution."""
    registry = build_registry(plugins=["onnxruntime", "quantization"])
    assert set(registry.strategies) == {"quantization"} and set(registry.targets) == {"ort-cpu", "ort-aarch64"}
    assert {"onnx", "torch", "huggingface"} <= set(registry.model_sources)
    assert {"digits", "npz", "factory", "text", "image-folder"} <= set(registry.dataset_kinds)
    assert {"top1", "top5", "agreement", "cosine"} <= set(registry.metrics)
    for table, plugin in ((registry.model_sources, "sources"), (registry.dataset_kinds, "datasets"),
                          (registry.metrics, "metrics")):
        assert {(p.provenance.plugin, p.provenance.distribution) for p in table.values()} == {(plugin, "edgecraft")}
    assert "mlflow" not in {p.provenance.plugin for p in registry.metrics.values()}


def test_a_core_plugin_is_skipped_only_when_disabled_by_name() -> None:
    registry = build_registry(plugins=["onnxruntime"], disable=["metrics"])
    assert not registry.metrics and registry.disabled == ["metrics"]
    assert "onnx" in registry.model_sources


def test_allowlist_naming_a_missing_plugin_is_bad_input() -> None:
    with pytest.raises(InputError, match="not installed"):
        build_registry(plugins=["onnxruntime", "nope"])


def test_cli_plugins_option_and_listing(testing_plugins: str, capsys) -> None:
    assert main(["--plugins", "onnxruntime,testing", "plugins", "--json"]) == 0
    text = capsys.readouterr().out
    assert "test-noise" in text and testing_plugins in text and "ort-cpu" in text
    assert "openvino-cpu" not in text


def test_failing_integration_hook_is_exit_5_not_1_nor_3(fake_dist, tmp_path, example_dir, capsys) -> None:
    """A crashing lifecycle plugin must not masquerade as a failed contract (exit 1) nor lose the verdicts
    (exit 3 without a report): exit 5, the report naming it (tests/devx/test_integration_failures.py)."""
    fake_dist("fakeplug-tracker", "fakeplug_tracker", """
        from edgecraft.hookspecs import hookimpl

        @hookimpl
        def edgecraft_run_started(plan, targets):
            raise ConnectionError("tracking server unreachable")
    """)
    import shutil

    for name in ("model.py", "digits_resnet.pt"):
        shutil.copy(example_dir / name, tmp_path / name)
    (tmp_path / "plan.yaml").write_text(
        "model: {kind: torch, factory: model.py:build, input_shape: [1, 1, 32, 32]}\ntargets: [ort-cpu]\n"
        "contracts: [{kind: size, min_ratio: 0.5}]\n")
    assert main(["run", str(tmp_path / "plan.yaml"), "--cache-dir", str(tmp_path / "cache"), "-q"]) == 5
    err = capsys.readouterr().err
    assert "fakeplug_tracker" in err and "edgecraft_run_started" in err and "unreachable" in err


# ---------------------------------------------------------------------------- one broken plugin (issue 16)
BROKEN_IMPORT = "import no_such_module_anywhere\n"


def test_broken_plugin_is_listed_and_the_rest_works(fake_dist, capsys) -> None:
    """`edgecraft plugins` lists a plugin that failed to import as broken, with the reason, and exits 0."""
    fake_dist("fakeplug-broken", "fakeplug_broken", BROKEN_IMPORT)
    assert main(["plugins", "--json"]) == 0
    import json

    rows = {(r["kind"], r["name"]): r for r in json.loads(capsys.readouterr().out)}
    broken = rows[("broken", "fakeplug_broken")]
    assert broken["distribution"] == "fakeplug-broken" and "no_such_module_anywhere" in broken["summary"]
    assert ("target", "ort-cpu") in rows


def test_broken_plugin_fails_only_plans_that_need_it(fake_dist, example_dir, capsys) -> None:
    fake_dist("fakeplug-broken", "fakeplug_broken", BROKEN_IMPORT)
    assert main(["validate", str(example_dir / "plan.yaml")]) == 0
    assert "fakeplug_broken" in capsys.readouterr().err  # a one-line note, not a failure
    assert main(["--strict-plugins", "validate", str(example_dir / "plan.yaml")]) == 3
    assert "fakeplug-broken" in capsys.readouterr().err


def test_plan_needing_a_missing_name_blames_the_broken_plugin(fake_dist, tmp_path, capsys) -> None:
    fake_dist("fakeplug-broken", "fakeplug_broken", BROKEN_IMPORT)
    plan = tmp_path / "plan.yaml"
    plan.write_text("model: {kind: onnx, path: m.onnx}\nsteps: [{strategy: clustering}]\n"
                    "targets: [{target: ort-cpu}]\n")
    code = main(["validate", str(plan)])
    text = capsys.readouterr().err
    assert code == 3, text
    assert "clustering" in text and "fakeplug_broken" in text and "did not load" in text


def test_disable_plugins_skips_a_plugin(fake_dist, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    fake_dist("fakeplug-broken", "fakeplug_broken", BROKEN_IMPORT)
    monkeypatch.setenv("EDGECRAFT_DISABLE_PLUGINS", "fakeplug_broken")
    registry = build_registry(strict=True)
    assert not registry.broken and registry.disabled == ["fakeplug_broken"]
    assert main(["--strict-plugins", "plugins"]) == 0
    assert "disabled" in capsys.readouterr().out


def test_half_registered_plugin_is_dropped_entirely(fake_dist) -> None:
    """A plugin whose second hook raises contributes nothing (its strategies included) and no lifecycle hooks."""
    fake_dist("fakeplug-half", "fakeplug_half", """
        from edgecraft.hookspecs import hookimpl
        from edgecraft.strategy import Strategy, StrategyParams

        class P(StrategyParams):
            pass

        class Half(Strategy):
            name = "half"
            params_model = P
            def resolve(self, params, ctx): ...
            def apply(self, step, model, ctx): ...

        @hookimpl
        def edgecraft_register_strategies(register):
            register(Half)

        @hookimpl
        def edgecraft_register_backends(register):
            raise RuntimeError("boom")

        @hookimpl
        def edgecraft_report_ready(report, report_dir):
            raise AssertionError("a broken plugin's hooks must not run")
    """)
    registry = build_registry()
    assert "half" not in registry.strategies and "fakeplug_half" in registry.broken
    assert registry.notify("edgecraft_report_ready", report={}, report_dir=None) == []  # its hook did not run
