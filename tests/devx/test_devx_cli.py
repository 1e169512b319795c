"""The plugin author's loop (issue 16): the CLI summary, the cache commands, --no-cache, and cache keys
that follow an editable plugin's source."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from edgecraft.cli import main, summary_line


def _report(statuses: list[list[tuple[str, bool]]], *, passed: bool, status: str | None = None) -> SimpleNamespace:
    targets = [SimpleNamespace(contracts=[SimpleNamespace(status=s, passed=p) for s, p in target])
               for target in statuses]
    return SimpleNamespace(targets=targets, passed=passed, status=status)


def test_summary_counts_what_failed_not_everything() -> None:
    report = _report([[("pass", True)] * 3, [("pass", True)] * 2 + [("fail", False)]], passed=False, status="fail")
    assert summary_line(report) == "FAILED: 1 of 6 contracts failed (5 passed) on 2 targets"


def test_summary_passed_and_inconclusive() -> None:
    assert summary_line(_report([[("pass", True)]], passed=True)) == "PASSED: 1 of 1 contract passed on 1 target"
    report = _report([[("pass", True), ("inconclusive", True)]], passed=True, status="inconclusive")
    assert summary_line(report) == "PASSED: 2 of 2 contracts passed (1 inconclusive, counted as passed) on 1 target"
    report = _report([[("pass", True), ("inconclusive", False)]], passed=False, status="inconclusive")
    assert summary_line(report) == "INCONCLUSIVE: 1 of 2 contracts inconclusive (1 passed) on 1 target"
    report = _report([[("fail", False), ("inconclusive", False)]], passed=False, status="fail")
    assert summary_line(report) == "FAILED: 1 of 2 contracts failed (0 passed, 1 inconclusive) on 1 target"


def _fake_entry(root: Path, key: str, size: int = 100) -> Path:
    folder = root / key[:2] / key
    folder.mkdir(parents=True)
    (folder / "model.bin").write_bytes(b"x" * size)
    (folder / "manifest.json").write_text(json.dumps({"created": "2026-12-01T00:00:00Z", "compiled_plan": {
        "plan_name": "p", "target": "ort-cpu", "steps": [{"strategy": "quantization"}]}}))
    return folder


def test_cache_info_and_clear_touch_only_edgecraft_entries(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fake_entry(tmp_path, "ab" + "0" * 62)
    _fake_entry(tmp_path, "cd" + "1" * 62, size=50)
    (tmp_path / "notes.txt").write_text("mine")  # a user's file in a mistaken --cache-dir survives clear
    (tmp_path / "ab" / "mine.txt").write_text("mine too")
    assert main(["cache", "info", "--cache-dir", str(tmp_path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["path"] == str(tmp_path) and info["entries"] == 2 and info["bytes"] > 150
    assert info["items"][0]["steps"] == ["quantization"]
    assert main(["cache", "info", "--cache-dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert str(tmp_path) in text and "2 entries" in text
    assert main(["cache", "clear", "--cache-dir", str(tmp_path)]) == 0
    assert "cleared 2 entries" in capsys.readouterr().out
    assert (tmp_path / "notes.txt").is_file() and (tmp_path / "ab" / "mine.txt").is_file()
    assert not (tmp_path / "cd").exists()
    assert main(["cache", "info", "--cache-dir", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["entries"] == 0


def test_readme_and_cache_dir_help_agree_on_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from edgecraft.assembly.artifacts import default_cache_dir
    from edgecraft.cli import CACHE_HELP

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "~/.cache/edgecraft/artifacts" in CACHE_HELP and "~/.cache/edgecraft/artifacts" in readme
    assert "~/.cache/edgecraft)" not in readme
    monkeypatch.delenv("EDGECRAFT_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", "/home/someone")
    assert default_cache_dir() == Path("/home/someone/.cache/edgecraft/artifacts")
