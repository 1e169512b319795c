"""Shared fixtures: an isolated artifact cache, the bundled example's paths, and fake installed plugins."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_DIR = REPO / "examples" / "digits"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run tests marked slow (training, big models, emulated devices): CI does")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow (CI does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


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
