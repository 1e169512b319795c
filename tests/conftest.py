"""Shared fixtures: an isolated artifact cache, the bundled example's paths, and fake installed plugins.

Also what a partial install means for the suite (see ``suite_requirements.py``): a test marked with an
optional extra or system tool it needs (``openvino``, ``tvm``, ``aarch64``, ``reports``, ``mlflow``,
``dev``) is skipped with the install command when that is missing, and FAILS instead under ``CI=true``
or ``EDGECRAFT_REQUIRE_ALL=1`` (set by ``./scripts/test``): only the full run is the definition of green.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import suite_requirements as requirements  # tests/suite_requirements.py: what each marker needs

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_DIR = REPO / "examples" / "digits"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run tests marked slow (training, big models, emulated devices): CI does")


def pytest_report_header(config: pytest.Config) -> list[str]:
    """The CPU features the suite ran with (some tests assert different behaviour on each kind of CPU),
    and which optional parts are installed."""
    return requirements.report_header()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    """Under -q (./scripts/test) there is no header: the same lines close the run instead."""
    if config.get_verbosity() < 0:
        for line in requirements.report_header():
            terminalreporter.write_line(line)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    requirements.mark_by_fixtures(items)
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow (CI does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip (or, when everything is required, fail) a test whose extra or system tool is missing."""
    missing = requirements.missing_for(item)
    if not missing:
        return
    if requirements.require_all():
        pytest.fail(f"{missing} ({requirements.REQUIRE_ALL_REASON})", pytrace=False)
    pytest.skip(missing)


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Artifacts go to a per-session folder, never the user's ~/.cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("EDGECRAFT_CACHE_DIR", str(tmp_path_factory.mktemp("edgecraft-cache")))
    mp.delenv("EDGECRAFT_PLUGINS", raising=False)
    yield
    mp.undo()


@pytest.fixture
def example_dir() -> Path:
    return EXAMPLE_DIR


@pytest.fixture
def fake_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Install a fake distribution on sys.path: a module plus dist-info with an `edgecraft` entry point.

    This exercises the real discovery path (importlib.metadata entry points), as a pip-installed
    third-party plugin would.
    """
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))

    def install(dist: str, module: str, source: str, *, entry_point: str | None = None, version: str = "1.0") -> None:
        (root / f"{module}.py").write_text(textwrap.dedent(source))
        info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[edgecraft]\n{entry_point or module} = {module}\n")
        sys.modules.pop(module, None)

    yield install
    for name in list(sys.modules):
        if name.startswith("fakeplug"):
            del sys.modules[name]


@pytest.fixture
def testing_plugins(fake_dist: Callable[..., None]) -> str:
    """The test-only strategies, installed as a fake third-party distribution (entry point `testing`)."""
    source = (Path(__file__).parent / "core" / "core_testing_plugins.py").read_text()
    fake_dist("edgecraft-testing-plugins", "fakeplug_testing", source, entry_point="testing")
    return "edgecraft-testing-plugins"
