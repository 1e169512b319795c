"""`edgecraft --version`, and on/off flags shown without a value placeholder in --help."""

from __future__ import annotations

import re
from importlib.metadata import version

import pytest
from edgecraft.cli import main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"edgecraft {version('edgecraft')}"


@pytest.mark.parametrize(("argv", "flag", "valued"), [(["--help"], "--debug", "--plugins"),
                                                     (["plugin", "check", "--help"], "--all", "--params"),
                                                     (["run", "--help"], "--no-cache", "--report-json")])
def test_flags_have_no_placeholder_and_value_options_keep_theirs(argv: list[str], flag: str, valued: str,
                                                                 capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert not any("<bool>" in line for line in lines), lines
    assert any(re.search(rf"{flag}\s+(-\w\s+)?[A-Z]", line) for line in lines), lines  # straight to the help
    assert any(re.search(rf"{valued}\s+(-\w\s+)?<\w", line) for line in lines), lines


def test_help_into_a_closed_pipe_exits_141_quietly() -> None:
    """`edgecraft --help | head -1`: the reader closed stdout, which is neither a verdict nor a plugin failure."""
    import shutil
    import subprocess

    exe = shutil.which("edgecraft")
    assert exe is not None
    child = subprocess.Popen([exe, "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()  # before the child has imported anything, so its first write meets a closed pipe
    stderr = child.stderr.read().decode()
    assert child.wait(timeout=60) == 141, stderr
    assert "error" not in stderr and "Traceback" not in stderr, stderr
