"""The documentation site builds with ``mkdocs build --strict`` (mkdocs.yml at the repo root, pages in docs/):
a broken link or anchor, a page missing from the navigation or a nav entry without a page fails here, as in
.ci/run. About 2 s, so not marked slow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.dev
def test_the_site_builds_in_strict_mode(tmp_path: Path) -> None:
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(REPO / "mkdocs.yml"),
                            "-d", str(tmp_path / "site")], capture_output=True, text=True, cwd=REPO,
                           env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"})
    assert built.returncode == 0, built.stderr[-3000:]
    for page in ("getting-started", "plans", "strategies", "targets", "release-gating", "reports", "scaling-out",
                 "writing-a-plugin", "plugins", "architecture", "security", "stability", "changelog"):
        assert (tmp_path / "site" / page / "index.html").is_file(), page


@pytest.mark.dev
def test_a_broken_anchor_fails_the_strict_build(tmp_path: Path) -> None:
    """The check catches what it is there for: a copy of the site with one broken anchor does not build."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\nSee [plans](plans.md#no-such-section).\n")
    (docs / "plans.md").write_text("# Plans\n\n## A plan\n")
    config = (REPO / "mkdocs.yml").read_text().split("\nnav:")[0]
    (tmp_path / "mkdocs.yml").write_text(config + "\nnav:\n  - Home: index.md\n  - Plans: plans.md\n")
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                           capture_output=True, text=True, cwd=tmp_path, env={"NO_MKDOCS_2_WARNING": "1",
                                                                               "PATH": "/usr/bin:/bin"})
    assert built.returncode != 0 and "no-such-section" in built.stderr, built.stderr[-2000:]
