"""Hostile inputs and faults through the CLI: the gate never lies (issue 14).

Every case runs ``edgecraft`` on a bad input or with an injected fault and checks four things: the
exit code, a message naming the fault, no traceback, and no leftovers (``.building-*`` folders or
lock files in the cache, ``edgecraft-work-*`` folders in the temp dir, half-written reports).
The model is a tiny ONNX MatMul built here, so a full run takes well under a second.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from edgecraft.cli import main

HOSTILE_PLUGIN = '''
import dataclasses, sys, time
from pathlib import Path
from typing import Literal
from edgecraft.hookspecs import hookimpl
from edgecraft.models import Stage
from edgecraft.strategy import Resolution, Strategy, StepResult, StrategyParams


class HostileParams(StrategyParams):
    mode: Literal["ok", "none", "wrong", "missing", "details", "exit", "resolve-none", "sleep"] = "ok"
    marker: str = ""


class Hostile(Strategy):
    name = "hostile"
    params_model = HostileParams

    def resolve(self, params, ctx):
        if params.mode == "resolve-none":
            return None
        return Resolution(Stage.ONNX, "onnx-hostile", params)

    def apply(self, step, model, ctx):
        mode = step.params["mode"]
        if mode == "none":
            return None
        if mode == "wrong":
            return {"model": model}
        if mode == "missing":
            return StepResult(dataclasses.replace(model, path=Path(ctx.work_dir) / "never-written.onnx"))
        if mode == "details":
            return StepResult(model, {"thing": object()})
        if mode == "exit":
            sys.exit(0)
        if mode == "sleep":
            Path(step.params["marker"]).write_text("building")
            time.sleep(60)
        return StepResult(model, {"ok": True})


@hookimpl
def edgecraft_register_strategies(register):
    register(Hostile)
'''


def tiny_onnx(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3) / 10, "W")
    graph = helper.make_graph([helper.make_node("MatMul", ["input", "W"], ["output"])], "tiny",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))


@dataclass
class Workspace:
    root: Path
    monkeypatch: pytest.MonkeyPatch
    plan_name: str = "plan.yaml"
    extra_args: list[str] = field(default_factory=list)

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    def plan(self, **overrides: Any) -> dict[str, Any]:
        plan: dict[str, Any] = {
            "name": "hostile",
            "model": {"kind": "onnx", "path": "tiny.onnx"},
            "latency": {"warmup": 1, "repeats": 5, "rounds": 1, "threads": 1},
            "targets": ["ort-cpu"],
            "contracts": [{"kind": "size", "min_ratio": 0.5}],
        }
        plan.update(overrides)
        return plan

    def write_plan(self, plan: dict[str, Any] | str, name: str = "plan.yaml") -> Path:
        path = self.root / name
        path.write_text(plan if isinstance(plan, str) else yaml.safe_dump(plan, sort_keys=False))
        self.plan_name = name
        return path

    def argv(self, *extra: str) -> list[str]:
        return ["run", str(self.root / self.plan_name), "--cache-dir", str(self.cache), "-q",
                "--report-json", str(self.reports / "report.json"), *self.extra_args, *extra]

    def leftovers(self) -> list[Path]:
        found = [p for p in self.cache.rglob("*") if p.name.startswith(".building-") or p.name.endswith(".lock")
                 or p.name.startswith(".edgecraft-probe")] if self.cache.is_dir() else []
        found += [p for p in self.tmp.iterdir() if p.name.startswith("edgecraft-")]
        if self.reports.is_dir():
            found += [p for p in self.reports.iterdir() if p.name.startswith(".")]
        return found


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_dist: Callable[..., None]) -> Workspace:
    fake_dist("hostile-plugins", "fakeplug_hostile", HOSTILE_PLUGIN, entry_point="hostile")
    w = Workspace(tmp_path / "w", monkeypatch)
    w.root.mkdir()
    w.tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(w.tmp))
    tiny_onnx(w.root / "tiny.onnx")
    return w


def enospc(*args: Any, **kwargs: Any) -> Any:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# ---------------------------------------------------------------------------- the cases
# Each setup gets the workspace, prepares the fault, and may return extra CLI arguments.
Setup = Callable[[Workspace], Any]


def plan_text(text: str, name: str = "plan.yaml") -> Setup:
    return lambda w: w.write_plan(textwrap.dedent(text), name)


def plan_with(**overrides: Any) -> Setup:
    return lambda w: w.write_plan(w.plan(**overrides))


def _bomb(w: Workspace) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    lines.append("name: *i")
    w.write_plan("\n".join(lines) + "\n")


def _factory_file(w: Workspace, body: str, *, data: bool = False) -> None:
    (w.root / "user.py").write_text(textwrap.dedent(body))
    if data:
        w.write_plan(w.plan(data={"d": {"kind": "factory", "factory": "user.py:make"}},
                            evaluation={"dataset": "d", "metrics": ["top1"]}))
    else:
        w.write_plan(w.plan(model={"kind": "torch", "factory": "user.py:build", "input_shape": [1, 4]}))


def _npz_objects(w: Workspace) -> None:
    np.savez(w.root / "d.npz", x=np.array([{"a": 1}, None], dtype=object), y=np.array([0, 1]))
    w.write_plan(w.plan(data={"d": {"kind": "npz", "path": "d.npz"}}, evaluation={"dataset": "d", "metrics": ["top1"]}))


def _reference(document: Any, *, raw: bytes | None = None) -> Setup:
    def setup(w: Workspace) -> list[str]:
        w.write_plan(w.plan(gate={"reference": {"max_size_growth_pct": 5}}))
        ref = w.root / "ref.json"
        ref.write_bytes(raw if raw is not None else json.dumps(document).encode())
        return ["--reference", str(ref)]
    return setup


def _reference_missing_field() -> dict[str, Any]:
    side = {"metrics": {}, "latency_ms": {"p50": 1.0, "p95": 1.2, "p99": 1.3, "mean": 1.0, "min": 0.9, "n": 1},
            "artifact": "/nope", "cached": True}  # size_bytes is missing
    return {"schema": "edgecraft.report/v1", "passed": True, "targets": [
        {"target": "ort-cpu", "target_name": "ort-cpu", "backend": "onnxruntime", "passed": True,
         "baseline": side, "compressed": side, "contracts": [], "artifact": "/nope", "compiled_key": "x"}]}


def _hostile(mode: str) -> Setup:
    return plan_with(steps=[{"strategy": "hostile", "params": {"mode": mode}}])


def _report_path_is_dir(w: Workspace) -> list[str]:
    w.write_plan(w.plan())
    (w.root / "junit.xml").mkdir()
    return ["--junit", str(w.root / "junit.xml")]


def _cache_is_file(w: Workspace) -> None:
    w.write_plan(w.plan())
    w.cache.write_text("not a folder")


def _cache_read_only(w: Workspace) -> None:
    w.write_plan(w.plan())
    w.cache.mkdir()
    import edgecraft.preflight

    def read_only(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))
    w.monkeypatch.setattr(edgecraft.preflight.tempfile, "mkstemp", read_only)


def _disk_full_writing_report(w: Workspace) -> None:
    w.write_plan(w.plan())
    real = os.replace

    def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> Any:
        if Path(dst).name == "report.json":
            enospc()
        return real(src, dst, *args, **kwargs)
    w.monkeypatch.setattr(os, "replace", replace)


def _disk_full_writing_lineage(w: Workspace) -> None:
    w.write_plan(w.plan())
    import edgecraft.assembly.builder

    w.monkeypatch.setattr(edgecraft.assembly.builder.shutil, "copyfile", enospc)


def _disk_full_writing_manifest(w: Workspace) -> None:
    w.write_plan(w.plan())
    w.monkeypatch.setattr(Path, "write_text", enospc)


CASES: list[tuple[str, Setup, int, str]] = [
    # plan files
    ("malformed YAML", plan_text("name: [unclosed\n"), 2, "malformed YAML"),
    ("unknown key", plan_with(bogus=1), 2, "bogus"),
    ("wrong type", plan_with(latency={"repeats": "many"}), 2, "latency.repeats"),
    ("two contracts blocks", plan_text("""\
        model: {kind: onnx, path: tiny.onnx}
        targets: [ort-cpu]
        contracts: [{kind: size, max_bytes: 1}]
        contracts: [{kind: size, min_ratio: 0.5}]
        """), 2, "duplicate key 'contracts' (first at line 3"),
    ("max_drop twice", plan_text("""\
        model: {kind: onnx, path: tiny.onnx}
        targets: [ort-cpu]
        contracts:
          - kind: accuracy
            metric: top1
            max_drop: 0.0
            max_drop: 0.5
        """), 2, "duplicate key 'max_drop' (first at line 6"),
    ("duplicate key in JSON", plan_text('{"model": {"kind": "onnx", "path": "tiny.onnx"},\n "targets": ["ort-cpu"],\n'
                                        ' "targets": []}\n', "plan.json"), 2,
     "duplicate key 'targets' (first at line 2"),
    ("billion laughs", _bomb, 2, "alias bomb"),
    ("recursive alias", plan_text("name: &a [*a]\n"), 2, "recursive"),
    ("oversized plan", plan_text("name: x\n" + "# padding\n" * 120_000), 2, "plans are limited to"),
    ("plan is a directory", lambda w: (w.root / "plan.yaml").mkdir(), 2, "is a directory"),
    ("plan is binary", lambda w: (w.root / "plan.yaml").write_bytes(b"\x7fELF\x02\x01\x01\x00\xff\xfe" * 20), 2,
     "not UTF-8 text"),
    ("plan is missing", lambda w: None, 2, "does not exist"),
    ("plan is a list", plan_text("- model\n- targets\n"), 2, "must be a mapping"),
    ("unknown strategy", plan_with(steps=[{"strategy": "no-such"}]), 2, "unknown strategy"),
    ("unknown target", plan_with(targets=["no-such-target"]), 2, "unknown target"),
    ("huge value in an error", plan_with(name=["x" * 100] * 5000), 2, "name = ['xxxx"),
    # models and data
    ("missing ONNX file", plan_with(model={"kind": "onnx", "path": "absent.onnx"}), 2, "absent.onnx"),
    ("corrupt ONNX file", lambda w: (w.write_plan(w.plan()), (w.root / "tiny.onnx").write_bytes(b"\x08\x07junk" * 50)),
     2, "tiny.onnx"),
    ("model factory sys.exit(0)", lambda w: _factory_file(w, "import sys\ndef build():\n    sys.exit(0)\n"), 2,
     "model.factory: user.py:build called sys.exit(0)"),
    ("factory builtins:exit", plan_with(model={"kind": "torch", "factory": "builtins:exit", "input_shape": [1, 4]}),
     2, "model.factory: builtins:exit called sys.exit(None)"),
    ("module exits at import", lambda w: _factory_file(w, "raise SystemExit(0)\ndef build(): pass\n"), 2,
     "importing"),
    ("data factory raises", lambda w: _factory_file(w, "def make():\n    raise ValueError('no data today')\n",
                                                    data=True), 2, "data.d.factory: user.py:make raised ValueError"),
    ("data factory exits", lambda w: _factory_file(w, "import sys\ndef make():\n    sys.exit(0)\n", data=True), 2,
     "called sys.exit(0)"),
    ("npz object arrays", _npz_objects, 2, "holds object arrays"),
    ("npz missing", plan_with(data={"d": {"kind": "npz", "path": "none.npz"}},
                              evaluation={"dataset": "d", "metrics": ["top1"]}), 2, "none.npz"),
    # reference reports
    ("reference missing a field", _reference(_reference_missing_field()), 2, "size_bytes: Field required"),
    ("reference is binary", _reference(None, raw=b"\x00\xff\xfe" * 10), 2, "--reference"),
    ("reference schema is huge", _reference({"schema": ["x"] * 100_000}), 2, "the report's schema is ['x'"),
    # the environment
    ("report path is a directory", _report_path_is_dir, 3, "is a directory"),
    ("cache dir is a file", _cache_is_file, 3, "not a directory"),
    ("cache dir is read-only", _cache_read_only, 3, "Read-only file system"),
    ("disk full writing the report", _disk_full_writing_report, 3, "No space left on device"),
    ("disk full writing lineage", _disk_full_writing_lineage, 3, "No space left on device"),
    ("disk full writing the manifest", _disk_full_writing_manifest, 3, "No space left on device"),
    # plugins
    ("apply returns None", _hostile("none"), 3, "apply() returned None; expected an edgecraft.strategy.StepResult"),
    ("apply returns a dict", _hostile("wrong"), 3, "apply() returned a dict"),
    ("apply's handle is missing", _hostile("missing"), 3, "never-written.onnx, which does not exist"),
    ("apply's details not JSON", _hostile("details"), 3, "cannot be written to the JSON report"),
    ("apply calls sys.exit(0)", _hostile("exit"), 3, "apply() called sys.exit(0)"),
    ("resolve returns None", _hostile("resolve-none"), 3, "resolve() returned None"),
]


@pytest.mark.parametrize("setup,code,message", [pytest.param(s, c, m, id=i) for i, s, c, m in CASES])
def test_hostile_input(ws: Workspace, capsys: pytest.CaptureFixture[str], setup: Setup, code: int,
                       message: str) -> None:
    extra = setup(ws)
    extra = extra if isinstance(extra, list) else []
    started = time.monotonic()
    got = main(ws.argv(*extra))
    elapsed = time.monotonic() - started
    out, err = capsys.readouterr()
    assert got == code, f"exit {got}, expected {code}\nstdout: {out[-2000:]}\nstderr: {err[-2000:]}"
    assert message in err, err
    assert "Traceback" not in err + out
    if "apply()" in message or "resolve()" in message:
        assert "hostile-plugins" in err  # the plugin's distribution is named
    assert not (ws.reports / "report.json").exists()  # no verdict, no report
    assert ws.leftovers() == []
    assert elapsed < 30


def test_case_table_is_large_enough() -> None:
    assert len(CASES) >= 30


def test_debug_shows_the_plugins_traceback(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    ws.write_plan(ws.plan(steps=[{"strategy": "hostile", "params": {"mode": "exit"}}]))
    assert main(["--debug", *ws.argv()]) == 3
    err = capsys.readouterr().err
    assert "Traceback" in err and "fakeplug_hostile" in err and "hostile-plugins" in err


# ---------------------------------------------------------------------------- the cache
def _run_ok(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    code = main(ws.argv())
    err = capsys.readouterr().err
    assert code == 0, err
    assert "Traceback" not in err and ws.leftovers() == []
    return json.loads((ws.reports / "report.json").read_text())


def _cached_entry(ws: Workspace) -> Path:
    (manifest,) = list(ws.cache.rglob("manifest.json"))
    return manifest.parent


@pytest.mark.parametrize("damage,reason", [
    (lambda p: p.write_bytes(bytes(b ^ 0xFF if i == len(p.read_bytes()) // 2 else b
                                   for i, b in enumerate(p.read_bytes()))), "sha256"),
    (lambda p: p.write_bytes(p.read_bytes()[:10]), "truncated"),
    (lambda p: p.unlink(), "missing"),
    (lambda p: (p.parent / "manifest.json").write_text("[1, 2]"), "not an object"),
    (lambda p: (p.parent / "manifest.json").write_text("{broken"), "unreadable"),
])
def test_damaged_cache_entry_is_rebuilt_and_reported(ws: Workspace, capsys: pytest.CaptureFixture[str],
                                                     damage: Callable[[Path], Any], reason: str) -> None:
    ws.write_plan(ws.plan())
    first = _run_ok(ws, capsys)
    assert first["targets"][0]["compressed"]["cache_rebuilt_reason"] is None
    entry = _cached_entry(ws)
    model = entry / "model.onnx"
    good = model.read_bytes()
    damage(model)
    second = _run_ok(ws, capsys)
    target = second["targets"][0]
    assert target["baseline"]["cached"] is False
    assert reason in target["baseline"]["cache_rebuilt_reason"]
    assert model.read_bytes() == good
    third = _run_ok(ws, capsys)  # verified now: a plain cache hit again
    assert third["targets"][0]["baseline"]["cached"] is True
    assert third["targets"][0]["baseline"]["cache_rebuilt_reason"] is None


def test_concurrent_writers_never_delete_each_others_entry(tmp_path: Path) -> None:
    from edgecraft.assembly.artifacts import ArtifactCache, write_manifest

    cache = ArtifactCache(tmp_path / "cache")
    key = "ab" * 32

    def build(content: bytes) -> None:
        with cache.building(key) as out:
            (out / "model.onnx").write_bytes(content)
            write_manifest(out, key=key, compiled={}, files=[out / "model.onnx"], size_bytes=len(content), steps=[])

    with cache.building(key) as out:  # writer A finishes while writer B is still building
        (out / "model.onnx").write_bytes(b"same")
        write_manifest(out, key=key, compiled={}, files=[out / "model.onnx"], size_bytes=4, steps=[])
        build(b"same")
    hit = cache.lookup(key)
    assert hit is not None and (hit.path / "model.onnx").read_bytes() == b"same"
    (hit.path / "model.onnx").write_bytes(b"evil")  # damaged: the next writer replaces it
    assert cache.lookup(key) is None and "sha256" in cache.rejected[key]
    build(b"good")
    hit = cache.lookup(key)
    assert hit is not None and (hit.path / "model.onnx").read_bytes() == b"good"
    assert [p.name for p in hit.path.parent.iterdir()] == [key]


def test_leftovers_of_killed_runs_are_swept_but_live_ones_kept(ws: Workspace,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from edgecraft.assembly.cache_verify import held_lock

    shard = ws.cache / "zz"
    shard.mkdir(parents=True)
    dead = shard / ".building-dead-1"
    dead.mkdir()
    (shard / ".building-dead-1.lock").write_text("12345\n")  # its owner is gone: nobody holds the lock
    old = time.time() - 3600
    os.utime(shard / ".building-dead-1.lock", (old, old))
    dead_work = ws.tmp / "edgecraft-work-dead"
    dead_work.mkdir()
    (ws.tmp / "edgecraft-work-dead.lock").write_text("1\n")
    os.utime(ws.tmp / "edgecraft-work-dead.lock", (old, old))
    ancient = ws.tmp / "edgecraft-work-ancient"  # from an older edgecraft: no lock file, two days old
    ancient.mkdir()
    os.utime(ancient, (old - 2 * 86400, old - 2 * 86400))
    live = shard / ".building-live-1"
    live.mkdir()
    ws.write_plan(ws.plan())
    with held_lock(live):  # another process's build in progress
        os.utime(live.with_name(live.name + ".lock"), (old, old))
        assert main(ws.argv()) == 0, capsys.readouterr().err
        assert live.is_dir()
    assert not dead.exists() and not dead_work.exists() and not ancient.exists()
    assert not (shard / ".building-dead-1.lock").exists() and not (ws.tmp / "edgecraft-work-dead.lock").exists()


# ---------------------------------------------------------------------------- reports
@pytest.mark.dev
def test_control_characters_never_reach_junit_or_the_terminal(ws: Workspace,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    import xmlschema
    name = "size\x1b[2J\x1b]0;pwned\x07 \x00bell\x0c [red]x[/red]"
    ws.write_plan(ws.plan(contracts=[{"kind": "size", "min_ratio": 0.5, "name": name}]))
    assert main(ws.argv()) == 2  # a plan refuses such a name (issue 25); a report may still carry one
    assert "control and bidirectional characters" in capsys.readouterr().err
    ws.write_plan(ws.plan(contracts=[{"kind": "size", "min_ratio": 0.5, "name": "plain"}]))
    assert main(ws.argv()) == 0
    document = json.loads((ws.reports / "report.json").read_text())
    document["targets"][0]["contracts"][0]["name"] = name
    (ws.root / "hostile.json").write_text(json.dumps(document))
    capsys.readouterr()
    junit, md, html = ws.reports / "junit.xml", ws.reports / "summary.md", ws.reports / "report.html"
    html_args = ["--html", str(html)] if _has_matplotlib() else []
    code = main(["report", str(ws.root / "hostile.json"), "--junit", str(junit), "--markdown", str(md), *html_args])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "\x1b" not in out + err and "\x07" not in out
    ET.parse(junit)  # well-formed
    xmlschema.XMLSchema(str(Path(__file__).with_name("junit.xsd"))).validate(str(junit))
    case = ET.parse(junit).getroot().find(".//testcase")
    assert case is not None and case.get("name", "").startswith("size\\x1b[2J")
    for path in (md, *([html] if html_args else [])):
        text = path.read_text()
        assert not any(c in text for c in "\x1b\x00\x07\x0c") and "\\x1b" in text


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def test_bounded_repr_costs_the_budget_not_the_value() -> None:
    from edgecraft.safe_text import bounded_repr

    value: Any = "lol"
    for _ in range(40):  # 9**40 leaves when expanded; the walk must stop after ~80 characters
        value = [value] * 9
    started = time.monotonic()
    text = bounded_repr(value, 80)
    assert time.monotonic() - started < 0.1 and len(text) <= 81 and text.endswith("…")
    assert bounded_repr({"a": 1, "b": "x\x1by"}) == "{'a': 1, 'b': 'x\\x1by'}"


# ---------------------------------------------------------------------------- signals
def _spawn(ws: Workspace, site: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "TMPDIR": str(ws.tmp)}
    env.pop("EDGECRAFT_PLUGINS", None)
    return subprocess.Popen([sys.executable, "-m", "edgecraft.cli", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
@pytest.mark.parametrize("signum,code,message", [
    (signal.SIGTERM, 143, "terminated (SIGTERM); partial artifacts removed"),
    (signal.SIGINT, 130, "interrupted; partial artifacts removed"),
])
def test_signal_during_a_build_cleans_up(ws: Workspace, tmp_path: Path, signum: int, code: int,
                                         message: str) -> None:
    marker = ws.root / "building"
    ws.write_plan(ws.plan(steps=[{"strategy": "hostile", "params": {"mode": "sleep", "marker": str(marker)}}]))
    proc = _spawn(ws, tmp_path / "site", *ws.argv())
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert any(p.name.startswith(".building-") for p in ws.cache.rglob("*"))  # mid-build
    proc.send_signal(signum)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == code, err
    assert message in err and "Traceback" not in err
    assert ws.leftovers() == []
    assert not (ws.reports / "report.json").exists()


@pytest.mark.slow
def test_sigkill_leftovers_are_swept_by_the_next_run(ws: Workspace, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import edgecraft.assembly.cache_verify

    marker = ws.root / "building"
    ws.write_plan(ws.plan(steps=[{"strategy": "hostile", "params": {"mode": "sleep", "marker": str(marker)}}]))
    proc = _spawn(ws, tmp_path / "site", *ws.argv())
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    proc.kill()
    proc.communicate(timeout=60)
    assert ws.leftovers()  # what SIGKILL leaves
    for lock in [*ws.cache.rglob("*.lock"), *ws.tmp.glob("*.lock")]:
        os.utime(lock, (time.time() - 3600,) * 2)  # past the just-created grace period
    ws.monkeypatch.setattr(edgecraft.assembly.cache_verify, "UNLOCKED_GRACE_S", 3600)
    ws.write_plan(ws.plan(steps=[{"strategy": "hostile", "params": {"mode": "ok"}}]))
    assert main(ws.argv()) == 0, capsys.readouterr().err
    assert ws.leftovers() == []
    shutil.rmtree(ws.cache)
