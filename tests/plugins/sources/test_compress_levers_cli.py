"""compress_levers.py's retime phase refuses bad --graph values before it loads any model (issue 28)."""

from __future__ import annotations

import pytest
from example_modules import benchmark_module


@pytest.mark.parametrize(("argv", "message"), [
    (["retime"], "retime needs at least one --graph NAME=PATH"),
    (["retime", "--graph", "h12f768"], "expected NAME=PATH"),
    (["retime", "--graph", "=x.onnx"], "expected NAME=PATH"),
    (["retime", "--graph", "h12f768=/nonexistent/final-p-long.onnx"], "no file at /nonexistent/final-p-long.onnx"),
])
def test_retime_rejects_bad_graphs(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    levers = benchmark_module("compress_levers")
    with pytest.raises(SystemExit) as exit_info:
        levers.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err

