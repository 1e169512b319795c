"""Two distributions registering one name: the error names both and says how to choose; choosing by distribution
(``--disable-plugins DIST:NAME``, ``EDGECRAFT_DISABLE_PLUGINS``) disables only that distribution's entry point,
so disabling a third party's namesake of a built-in keeps the built-in."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from edgecraft.cli import main
from edgecraft.errors import PluginError
from edgecraft.registry import build_registry
from edgecraft.settings import DISABLE_ENV, Settings

NAMESAKE = """
    import shutil
    from edgecraft import OnnxModel, Resolution, Stage, StepResult, Strategy, StrategyParams, hookimpl

    class Copy(Strategy):
        name = "{strategy}"
        params_model = StrategyParams
        def resolve(self, params, ctx):
            return Resolution(Stage.ONNX, "copy", params)
        def apply(self, step, model, ctx):
            out = ctx.step_dir() / "copy.onnx"
            shutil.copyfile(model.path, out)
            return StepResult(OnnxModel(out, model.io), {{}})

    @hookimpl
    def edgecraft_register_strategies(register):
        register(Copy)
"""


def builtin_quantization() -> set[str]:
    registry = build_registry()
    return {n for n, p in registry.strategies.items() if p.provenance.plugin == "quantization"}


@pytest.fixture
def namesake(fake_dist: Callable[..., None]) -> set[str]:
    """A third party whose entry point is named like the built-in ``quantization`` plugin (what `plugin new` now
    refuses, but an older scaffold or a hand-written package can still do)."""
    builtin = builtin_quantization()
    assert builtin
    fake_dist("fakeplug-q", "fakeplug_q", NAMESAKE.format(strategy="kit-q"), entry_point="quantization")
    return builtin


def test_a_namesake_of_a_builtin_names_both_distributions_and_how_to_choose(namesake: set[str]) -> None:
    with pytest.raises(PluginError) as info:
        build_registry()
    text = str(info.value)
    assert "two distributions register the plugin (entry-point) name 'quantization'" in text
    assert "edgecraft (edgecraft.plugins.quantization" in text and "fakeplug-q (fakeplug_q)" in text
    assert "--disable-plugins fakeplug-q:quantization keeps edgecraft's" in text
    assert "--disable-plugins edgecraft:quantization keeps fakeplug-q's" in text and DISABLE_ENV in text


def test_disabling_the_third_party_by_distribution_keeps_the_builtin(namesake: set[str]) -> None:
    registry = build_registry(disable=["fakeplug-q:quantization"])
    assert namesake <= set(registry.strategies) and "kit-q" not in registry.strategies
    assert registry.disabled == ["fakeplug-q:quantization"]
    chosen = build_registry(disable=["edgecraft:quantization"])  # or the other way round
    assert "kit-q" in chosen.strategies and not namesake & set(chosen.strategies)
    assert chosen.strategies["kit-q"].provenance.distribution == "fakeplug-q"
    plain = build_registry(disable=["quantization"])  # a plain name disables every distribution's entry point
    assert "kit-q" not in plain.strategies and not namesake & set(plain.strategies)
    spelled = build_registry(disable=["FakePlug_Q:quantization"])  # names compare as pip compares them
    assert namesake <= set(spelled.strategies) and "kit-q" not in spelled.strategies
    whole = build_registry(disable=["fakeplug-q:*"])
    assert namesake <= set(whole.strategies) and "kit-q" not in whole.strategies


def test_the_cli_and_the_environment_choose_by_distribution(namesake: set[str], capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["plugins"]) == 3
    err = " ".join(capsys.readouterr().err.split())  # the terminal may wrap it
    assert "fakeplug-q" in err and "edgecraft" in err and "--disable-plugins fakeplug-q:quantization" in err
    assert main(["--disable-plugins", "fakeplug-q:quantization", "plugins", "--json"]) == 0
    out = capsys.readouterr().out
    assert '"fakeplug-q:quantization"' in out and '"kind": "disabled"' in out
    monkeypatch.setenv(DISABLE_ENV, "fakeplug-q:quantization")
    assert namesake <= set(build_registry().strategies)
    settings = Settings.from_env()
    assert settings.child_environ()[DISABLE_ENV] == "fakeplug-q:quantization"  # children load the same plugins


def test_two_third_parties_registering_one_strategy_name(fake_dist: Callable[..., None]) -> None:
    fake_dist("fakeplug-a", "fakeplug_a", NAMESAKE.format(strategy="kit-dup"), entry_point="a")
    fake_dist("fakeplug-b", "fakeplug_b", NAMESAKE.format(strategy="kit-dup"), entry_point="b")
    with pytest.raises(PluginError) as info:
        build_registry()
    text = str(info.value)
    assert "strategy name 'kit-dup' is registered twice" in text
    assert "fakeplug-a 1.0 (plugin 'a')" in text and "fakeplug-b 1.0 (plugin 'b')" in text
    assert "--disable-plugins fakeplug-a:a keeps fakeplug-b's" in text
    assert "--disable-plugins fakeplug-b:b keeps fakeplug-a's" in text
    assert build_registry(disable=["fakeplug-b:b"]).strategies["kit-dup"].provenance.distribution == "fakeplug-a"
    assert build_registry(disable=["fakeplug-a:a"]).strategies["kit-dup"].provenance.distribution == "fakeplug-b"
