"""Commands plugins add (``edgecraft_register_commands``), and the settings the CLI hands to what it configures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from edgecraft.cli import main
from edgecraft.settings import Settings

HELLO = """
    import typer
    from edgecraft.cli.session import CliSession
    from edgecraft.hookspecs import hookimpl

    @hookimpl
    def edgecraft_register_commands(cli):
        @cli.command("hello")
        def hello(ctx: typer.Context, name: str = "board") -> None:
            '''Greet a board (a plugin's command).'''
            session = CliSession.of(ctx)
            print(f"hello {name}; plugins {sorted(session.settings.plugins or ['all'])}")
"""


def _rows(out: str) -> dict[tuple[str, str], dict[str, str]]:
    return {(r["kind"], r["name"]): r for r in json.loads(out)}


def test_a_plugin_adds_a_command(fake_dist, capsys: pytest.CaptureFixture[str]) -> None:
    fake_dist("fakeplug-hello", "fakeplug_hello", HELLO)
    assert main(["hello", "--name", "rk3588"]) == 0
    assert "hello rk3588; plugins ['all']" in capsys.readouterr().out
    assert main(["--plugins", "fakeplug_hello,onnxruntime", "hello"]) == 0  # the command sees the options
    assert "plugins ['fakeplug_hello', 'onnxruntime']" in capsys.readouterr().out
    assert main(["--help"]) == 0
    assert "hello" in capsys.readouterr().out
    assert main(["plugins", "--json"]) == 0
    row = _rows(capsys.readouterr().out)[("command", "hello")]
    assert row["distribution"] == "fakeplug-hello" and row["summary"] == "Greet a board (a plugin's command)."


def test_the_device_commands_come_from_the_tvm_backend(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--json"]) == 0
    row = _rows(capsys.readouterr().out)[("command", "device")]
    assert (row["plugin"], row["distribution"]) == ("tvm", "edgecraft")
    assert main(["--disable-plugins", "tvm", "device", "list"]) == 2  # no TVM plugin, no device commands
    assert "No such command 'device'" in capsys.readouterr().err


@pytest.mark.parametrize("source, reason", [
    ("""
        from edgecraft.hookspecs import hookimpl

        @hookimpl
        def edgecraft_register_commands(cli):
            raise RuntimeError("no licence server")
     """, "raised in edgecraft_register_commands: RuntimeError: no licence server"),
    ("""
        from edgecraft.hookspecs import hookimpl

        @hookimpl
        def edgecraft_register_commands(cli):
            @cli.command("run")
            def run() -> None:
                pass
     """, "registers the command 'run', which edgecraft's own CLI provides already"),
])
def test_a_failing_command_plugin_does_not_take_the_cli_down(fake_dist, capsys: pytest.CaptureFixture[str],
                                                            source: str, reason: str) -> None:
    fake_dist("fakeplug-cmd", "fakeplug_cmd", source)
    assert main(["--help"]) == 0
    assert "device" in capsys.readouterr().out  # every other plugin's commands are still there
    assert main(["plugins", "--json"]) == 0
    broken = _rows(capsys.readouterr().out)[("broken", "fakeplug_cmd")]
    assert broken["distribution"] == "fakeplug-cmd" and reason in broken["summary"]
    assert main(["--strict-plugins", "plugins"]) == 3
    assert "fakeplug-cmd" in capsys.readouterr().err
    assert main(["--strict-plugins", "device", "list"]) == 3  # strict: every command that loads plugins fails
    assert reason in capsys.readouterr().err
    assert main(["--disable-plugins", "fakeplug_cmd", "--strict-plugins", "plugins", "--json"]) == 0


def test_a_missing_command_blames_a_plugin_that_did_not_load(fake_dist, capsys: pytest.CaptureFixture[str]) -> None:
    fake_dist("fakeplug-broken", "fakeplug_broken", "import no_such_module_anywhere\n")
    assert main(["hello"]) == 3
    err = capsys.readouterr().err
    assert "no command 'hello'" in err and "fakeplug_broken" in err and "no_such_module_anywhere" in err


def test_device_serve_needs_a_board_a_tracker_can_serve(fake_dist, capsys: pytest.CaptureFixture[str]) -> None:
    fake_dist("fakeplug-dev", "fakeplug_dev", """
        from edgecraft.devices import Device
        from edgecraft.hookspecs import hookimpl

        class Local(Device):
            name = "local-only"

            def setup(self, cache_dir=None, *, force=False):
                return cache_dir

        @hookimpl
        def edgecraft_register_devices(register):
            register(Local)
    """)
    assert main(["device", "serve", "local-only", "--tracker", "127.0.0.1:9190", "--key", "k"]) == 2
    assert "device 'local-only' cannot be served to a tracker" in capsys.readouterr().err


def test_settings_come_from_the_environment_once() -> None:
    env = {"EDGECRAFT_PLUGINS": "a, b,", "EDGECRAFT_DISABLE_PLUGINS": "c", "EDGECRAFT_STRICT_PLUGINS": "yes",
           "EDGECRAFT_CACHE_DIR": "/tmp/cache", "HOME": "/home/someone"}
    settings = Settings.from_env(env)
    assert settings == Settings(plugins=frozenset({"a", "b"}), disabled_plugins=frozenset({"c"}),
                                strict_plugins=True, cache_dir=Path("/tmp/cache"))
    assert Settings.from_env({"EDGECRAFT_PLUGINS": ""}).plugins is None  # empty: every plugin
    assert settings.with_plugin_options(plugins="", strict=False) == Settings(
        disabled_plugins=frozenset({"c"}), cache_dir=Path("/tmp/cache"))
    assert settings.child_environ() == {"EDGECRAFT_PLUGINS": "a,b", "EDGECRAFT_DISABLE_PLUGINS": "c"}


def test_child_processes_see_the_plugin_options_for_the_invocation_only(
        fake_dist, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """--plugins reaches the processes a command starts (the memory probe, isolated trials, Ray nodes) through
    their environment, and the environment is as before once the command returns."""
    fake_dist("fakeplug-env", "fakeplug_env", """
        import os
        from edgecraft.hookspecs import hookimpl

        @hookimpl
        def edgecraft_register_commands(cli):
            @cli.command("env")
            def env() -> None:
                print(os.environ["EDGECRAFT_PLUGINS"], "|", os.environ["EDGECRAFT_DISABLE_PLUGINS"])
    """)
    monkeypatch.setenv("EDGECRAFT_DISABLE_PLUGINS", "openvino")
    assert main(["--plugins", "fakeplug_env,tvm", "env"]) == 0
    assert capsys.readouterr().out.strip() == "fakeplug_env,tvm | openvino"
    assert "EDGECRAFT_PLUGINS" not in os.environ and os.environ["EDGECRAFT_DISABLE_PLUGINS"] == "openvino"


def test_what_help_imports_stays_light() -> None:
    """`edgecraft --help` imports the CLI, the plugin loading and every entry module to list the plugins'
    commands: edgecraft's own part of that (its entry modules included) imports no heavy library."""
    heavy = ("numpy", "pydantic", "torch", "onnx", "onnxruntime", "tvm", "edgecraft.backend", "edgecraft.strategy")
    code = ("import sys, importlib.metadata as m, edgecraft.cli, edgecraft.backends.tvm.commands\n"
            "from edgecraft.cli.plugin_commands import load_plugin_commands\n"
            "from edgecraft.settings import Settings\n"
            "ours = ','.join(e.name for e in m.entry_points(group='edgecraft') if e.dist.name == 'edgecraft')\n"
            "found = load_plugin_commands(Settings(plugins=frozenset(ours.split(','))), frozenset())\n"
            f"print(sorted(found.commands), [m for m in {heavy!r} if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['device'] []", done.stdout
