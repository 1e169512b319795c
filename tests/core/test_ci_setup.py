"""What a newcomer and CI run: the README's two commands, the suite's handling of partial installs, the
CPU-feature module the CPU-dependent tests read, and the CLI's quiet output."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import suite_requirements
from edgecraft import cpu, logging_setup

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
from readme_commands import readme_commands  # noqa: E402

sys.path.pop(0)

AVX2_EPYC = """processor	: 0
vendor_id	: AuthenticAMD
model name	: AMD EPYC 7B13
flags		: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 bmi2 sha_ni
"""
SAPPHIRE_RAPIDS = """processor	: 0
model name	: Intel(R) Xeon(R) Platinum 8480+
flags		: fpu sse2 avx avx2 avx512f avx512bw avx512vl avx_vnni avx512_bf16 avx512_vnni amx_bf16 amx_tile amx_int8
"""
CASCADE_LAKE = """model name	: Intel(R) Xeon(R) Gold 6248
flags		: avx avx2 avx512f avx512bw avx512_vnni
"""
GRAVITON = """processor	: 0
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
"""


# ---------------------------------------------------------------------------- the CPU's features
@pytest.mark.parametrize(("text", "int8", "bf16"), [
    (AVX2_EPYC, [], []),
    (CASCADE_LAKE, ["avx512_vnni"], []),
    (SAPPHIRE_RAPIDS, ["avx512_vnni", "avx_vnni", "amx_int8"], ["avx512_bf16", "amx_bf16"]),
    (GRAVITON, [], []),
    ("", [], []),
])
def test_cpu_features_from_cpuinfo(text: str, int8: list[str], bf16: list[str]) -> None:
    assert cpu.int8_features(text) == int8
    assert cpu.bf16_features(text) == bf16
    assert cpu.has_bf16(text) is bool(bf16)
    assert cpu.has_vnni(text) is any(f in int8 for f in ("avx512_vnni", "avx_vnni"))
    line = cpu.describe(text)
    assert ("int8 none" in line) is (not int8) and ("bf16 none (f32 only)" in line) is (not bf16)


def test_cpu_summary_names_the_model_and_features() -> None:
    summary = cpu.cpu_summary(SAPPHIRE_RAPIDS)
    assert summary["model"] == "Intel(R) Xeon(R) Platinum 8480+"
    assert summary["bf16"] == ["avx512_bf16", "amx_bf16"] and summary["avx512f"] is True
    assert cpu.cpu_summary(AVX2_EPYC)["avx2"] is True and cpu.cpu_summary(AVX2_EPYC)["avx512f"] is False


def test_the_quantizer_reads_the_shared_module(monkeypatch: pytest.MonkeyPatch) -> None:
    from edgecraft.backends.onnxruntime.quantize_engine import cpu_has_vnni

    monkeypatch.setattr(cpu, "_cpuinfo", lambda: AVX2_EPYC)
    assert cpu_has_vnni() is False
    monkeypatch.setattr(cpu, "_cpuinfo", lambda: CASCADE_LAKE)
    assert cpu_has_vnni() is True


def test_cpuinfo_is_read_in_one_place() -> None:
    """Every CPU-feature decision goes through edgecraft.cpu: no second reader of /proc/cpuinfo."""
    readers = []
    for folder in ("sdk", "plugins", "backends", "benchmarks", "examples", "integration"):
        for path in (REPO / folder).rglob("*.py"):
            if "/proc/cpuinfo" in path.read_text(encoding="utf-8") and path != REPO / "sdk" / "cpu.py":
                readers.append(str(path.relative_to(REPO)))
    assert readers == []


# ---------------------------------------------------------------------------- partial installs
class _Item:
    def __init__(self, *markers: str) -> None:
        self._markers = set(markers)

    def get_closest_marker(self, name: str) -> object | None:
        return object() if name in self._markers else None


def test_missing_extra_gives_a_reason_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(suite_requirements, "module_present", lambda name: name != "mlflow")
    reason = suite_requirements.missing_for(_Item("mlflow"))
    assert reason == ("needs the mlflow extra: missing mlflow (python module); run ./scripts/test "
                      "(or pip install -e '.[mlflow]')")
    assert suite_requirements.missing_for(_Item("openvino", "reports")) is None
    assert suite_requirements.missing_for(_Item()) is None


def test_missing_tools_and_device_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(suite_requirements, "module_present", lambda name: True)
    monkeypatch.setattr(suite_requirements.shutil, "which", lambda tool: None if "qemu" in tool else "/usr/bin/x")
    monkeypatch.setattr(suite_requirements, "device_ready", lambda: False)
    reason = suite_requirements.missing_for(_Item("aarch64"))
    assert reason is not None
    assert "missing qemu-aarch64-static, the arm64-emulated device" in reason
    assert "apt-get install -y gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-user-static" in reason
    assert suite_requirements.missing_for(_Item("tvm")) is None  # the host target needs the extra only


@pytest.mark.parametrize(("env", "required"), [
    ({}, False), ({"CI": "true"}, True), ({"CI": "1"}, True), ({"CI": "false"}, False),
    ({"EDGECRAFT_REQUIRE_ALL": "1"}, True), ({"EDGECRAFT_REQUIRE_ALL": "0"}, False),
])
def test_when_everything_is_required(env: dict[str, str], required: bool) -> None:
    assert suite_requirements.require_all(env) is required


def test_every_marker_is_registered_in_pyproject() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    registered = {m.split(":")[0] for m in config["tool"]["pytest"]["ini_options"]["markers"]}
    assert set(suite_requirements.NEEDS) <= registered
    extras = config["project"]["optional-dependencies"]
    for need in suite_requirements.NEEDS.values():
        for extra in re.findall(r"\.\[(\w+)\]", need.install):
            assert extra in extras, (need.marker, extra)


def test_optional_parts_are_declared_with_markers_not_ad_hoc_skips() -> None:
    """An importorskip or a home-made skipif on an optional module would skip under CI too, hiding a broken
    install; the markers skip with the install command locally and fail under CI."""
    optional = "|".join(sorted({m for need in suite_requirements.NEEDS.values() for m in need.modules}))
    ad_hoc = re.compile(rf"""importorskip\(\s*["']({optional})["']"""
                        rf"""|find_spec\(\s*["']({optional})["']\s*\)\s*is None""")
    offenders = [f"{path.relative_to(REPO)}:{n}" for path in sorted((REPO / "tests").rglob("*.py"))
                 if path.name not in ("test_ci_setup.py", "suite_requirements.py")
                 for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if ad_hoc.search(line)]
    assert offenders == [], "use @pytest.mark.<extra> (tests/suite_requirements.py) instead"


def _pytest_without_mlflow(env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The mlflow test in a pytest where mlflow cannot be imported (a partial install)."""
    script = ("import sys, pytest; sys.modules['mlflow'] = None; "
              "sys.exit(pytest.main(sys.argv[1:]))")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "EDGECRAFT_REQUIRE_ALL", "PYTEST_ADDOPTS")}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-c", script, "--run-slow", "-q", "-ra", "-p", "no:cacheprovider",
         "tests/core/test_gate_integrations.py::test_cli_run_is_logged_to_a_local_mlflow_store"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_partial_install_skips_with_the_command_and_ci_fails() -> None:
    skipped = _pytest_without_mlflow({})
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr
    assert re.search(r"SKIPPED \[1\] .*needs the mlflow extra: missing mlflow \(python module\); run "
                     r"\./scripts/test \(or pip install -e '\.\[mlflow\]'\)", skipped.stdout), skipped.stdout
    assert "mlflow MISSING" in skipped.stdout  # the closing summary of a -q run says what is missing
    failed = _pytest_without_mlflow({"EDGECRAFT_REQUIRE_ALL": "1"})
    assert failed.returncode == 1, failed.stdout
    assert "ERROR at setup of test_cli_run_is_logged_to_a_local_mlflow_store" in failed.stdout
    assert "needs the mlflow extra" in failed.stdout
    assert "a missing dependency is a failure, not a skip" in failed.stdout


# ---------------------------------------------------------------------------- the README's commands
def test_readme_commands_are_marked_and_runnable() -> None:
    commands = readme_commands((REPO / "README.md").read_text(encoding="utf-8"))
    assert set(commands) == {"command-1", "command-2"}
    one = commands["command-1"]
    assert one.startswith('pip install -e ".[openvino,reports]" && edgecraft run examples/digits/plan.yaml')
    plan = re.search(r"edgecraft run (\S+)", one)
    assert plan and (REPO / plan.group(1)).is_file()
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert all(extra in extras for extra in re.search(r"\.\[([\w,]+)\]", one).group(1).split(","))
    assert commands["command-2"] == "./scripts/test"
    assert os.access(REPO / "scripts" / "test", os.X_OK)


def test_ci_runs_what_the_readme_says() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    lines = [ln.strip() for ln in ci.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert "./scripts/test" in lines  # exactly the README's command, no arguments
    assert "./scripts/newcomer-check" in lines
    assert "pytest" not in ci.replace("./scripts/test", "")  # no second, different way of running the suite
    script = (REPO / "scripts" / "test").read_text()
    assert 'pip install -q -e ".[all,dev]"' in script and "--run-slow -q -ra" in script
    assert "EDGECRAFT_REQUIRE_ALL=1" in script and "device setup arm64-emulated" in script
    newcomer = (REPO / "scripts" / "newcomer-check").read_text()
    assert "readme_commands.py README.md command-1" in newcomer and "-m venv" in newcomer
    assert "--system-site-packages" not in newcomer


@pytest.mark.parametrize("path", ["scripts/test", "scripts/newcomer-check", ".ci/run"])
def test_scripts_parse(path: str) -> None:
    subprocess.run(["bash", "-n", str(REPO / path)], check=True)


@pytest.mark.parametrize("readme", [
    "<!-- command-1 -->\n```bash\npip install x\n```\n",  # no closing marker
    "<!-- command-1 -->\n```bash\npip install x\nedgecraft run y\n```\n<!-- /command-1 -->\n",  # two commands
])
def test_broken_readme_markers_are_errors(readme: str) -> None:
    with pytest.raises(ValueError, match="command-1"):
        readme_commands(readme)


def test_continuation_lines_are_one_command() -> None:
    text = "<!-- command-2 -->\n```bash\n./scripts/test \\\n  -x\n```\n<!-- /command-2 -->\n"
    assert readme_commands(text) == {"command-2": "./scripts/test -x"}


# ---------------------------------------------------------------------------- quiet output
@pytest.fixture
def fake_library(monkeypatch: pytest.MonkeyPatch):
    """A library logger with its own terminal handler (as NNCF has), routed by configure()."""
    monkeypatch.setattr(logging_setup, "THIRD_PARTY_LOGGERS", ("fakelib",))
    logger = logging.getLogger("fakelib")
    terminal = io.StringIO()
    handler = logging.StreamHandler(terminal)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    debug = io.StringIO()
    ours = logging.getLogger("edgecraft.thirdparty.fakelib")
    ours_handler = logging.StreamHandler(debug)
    ours.addHandler(ours_handler)
    yield logger, terminal, debug
    logging_setup.reset()
    for h in list(logger.handlers):
        logger.removeHandler(h)
    logger.propagate = True
    ours.removeHandler(ours_handler)


def test_library_logs_go_to_debug_and_warnings_are_counted(fake_library) -> None:
    logger, terminal, debug = fake_library
    logging_setup.configure(verbose=False)
    captured: list[str] = []

    class Capture(logging.Handler):  # edgecraft reads some library INFO records itself (NNCF's reverted layers)
        def emit(self, record: logging.LogRecord) -> None:
            captured.append(record.getMessage())

    logger.addHandler(Capture())
    logger.info("Elapsed Time: 00:00:00")
    logger.warning("calibration subset is small")
    assert terminal.getvalue() == ""
    assert "INFO: Elapsed Time" in debug.getvalue() and "WARNING: calibration subset is small" in debug.getvalue()
    assert captured == ["Elapsed Time: 00:00:00", "calibration subset is small"]
    assert logging_setup.hidden_summary() == ("1 warning(s) from libraries hidden (fakelib 1): "
                                              "rerun with --verbose to see them")


def test_verbose_leaves_library_logs_alone(fake_library) -> None:
    logger, terminal, _ = fake_library
    logging_setup.configure(verbose=True)
    logger.warning("shown")
    assert terminal.getvalue() == "shown\n"
    assert logging_setup.hidden_summary() is None


def test_printed_output_is_captured_only_when_quiet(fake_library, capsys: pytest.CaptureFixture[str]) -> None:
    with logging_setup.third_party_output():  # not configured: edgecraft used as a library changes nothing
        print("library progress bar")
    assert "library progress bar" in capsys.readouterr().out
    logging_setup.configure(verbose=False)
    with logging_setup.third_party_output("fakelib"):
        print("INFO:nncf:Validation of initial model was started")
        print("WARNING: something")
    assert capsys.readouterr().out == ""
    assert "1 warning(s) from libraries hidden (printed output 1)" in (logging_setup.hidden_summary() or "")


def test_cli_has_a_global_verbose_option(capsys: pytest.CaptureFixture[str]) -> None:
    from edgecraft.cli import main

    assert main(["--verbose", "plugins", "--json"]) == 0
    assert '"ort-cpu"' in capsys.readouterr().out
    assert logging_setup.is_quiet() is False  # main() resets what the invocation configured
    assert main(["--help"]) == 0
    assert "--verbose" in capsys.readouterr().out


def test_report_dir_without_matplotlib_skips_the_html_with_a_note(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    import importlib.util

    from edgecraft.verify.reports import ReportFiles

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    files = ReportFiles.from_options(report_dir=tmp_path)
    assert files.html is None and files.json == tmp_path / "report.json" and files.junit is not None
    assert files.notes == [f"{tmp_path / 'report.html'} not written: the HTML report needs matplotlib "
                           "(pip install 'edgecraft[reports]'); the other reports are written"]
    explicit = ReportFiles.from_options(report_dir=tmp_path, html=tmp_path / "page.html")
    assert explicit.html == tmp_path / "page.html" and explicit.notes == []  # --html asked for it: an error later
