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
        build_registry()


def test_plugin_raising_during_registration_is_exit_3(fake_dist, capsys) -> None:
    fake_dist("fakeplug-raise", "fakeplug_raise", """
        from edgecraft.hookspecs import hookimpl

        @hookimpl
        def edgecraft_register_backends(register):
            raise RuntimeError("no licence server")
    """)
    assert main(["plugins"]) == 3
    err = capsys.readouterr().err
    assert "fakeplug_raise" in err and "fakeplug-raise" in err and "no licence server" in err


def test_plugin_failing_to_import_is_exit_3(fake_dist, capsys) -> None:
    fake_dist("fakeplug-broken", "fakeplug_broken", "import no_such_module_anywhere\n")
    assert main(["plugins"]) == 3
    assert "fakeplug-broken" in capsys.readouterr().err


def test_registering_a_non_strategy_is_a_plugin_error(fake_dist) -> None:
    fake_dist("fakeplug-wrong", "fakeplug_wrong", """
        from edgecraft.hookspecs import hookimpl

        @hookimpl
        def edgecraft_register_strategies(register):
            register(object)
    """)
    with pytest.raises(PluginError, match=r"not a subclass of edgecraft\.Strategy"):
        build_registry()


def test_allowlist_loads_only_listed_plugins(fake_dist, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dist("fakeplug-raise", "fakeplug_raise", """
        from edgecraft.hookspecs import hookimpl

        @hookimpl
        def edgecraft_register_backends(register):
            raise RuntimeError("must not be loaded")
    """)
    monkeypatch.setenv("EDGECRAFT_PLUGINS", "onnxruntime")
    registry = build_registry()
    assert set(registry.targets) == {"ort-cpu"}
    assert not registry.strategies


def test_allowlist_naming_a_missing_plugin_is_bad_input() -> None:
    with pytest.raises(InputError, match="not installed"):
        build_registry(plugins=["onnxruntime", "nope"])


def test_cli_plugins_option_and_listing(testing_plugins: str, capsys) -> None:
    assert main(["--plugins", "onnxruntime,testing", "plugins", "--json"]) == 0
    text = capsys.readouterr().out
    assert "test-noise" in text and testing_plugins in text and "ort-cpu" in text
    assert "openvino-cpu" not in text


def test_failing_integration_hook_is_exit_3_not_1(fake_dist, tmp_path, example_dir, capsys) -> None:
    """A crashing lifecycle plugin must not masquerade as a failed contract (exit 1)."""
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
        "model: {kind: torch, factory: model.py:build, input_shape: [1, 1, 32, 32]}\ntargets: [ort-cpu]\n")
    assert main(["run", str(tmp_path / "plan.yaml"), "--cache-dir", str(tmp_path / "cache"), "-q"]) == 3
    err = capsys.readouterr().err
    assert "fakeplug_tracker" in err and "edgecraft_run_started" in err and "unreachable" in err
