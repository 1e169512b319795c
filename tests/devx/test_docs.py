"""Every snippet of the documentation (docs/*.md, the site's pages) runs: each page's python blocks in order
in one namespace (as a reader would paste them), the toml, yaml and json blocks parse, the bash blocks are
valid shell. A doc that drifts from the code fails here; the site itself builds in tests/devx/test_docs_site.py."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "plugins.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.M | re.S)


PAGES = sorted((REPO / "docs").glob("*.md"))


def run_snippets(page: Path) -> dict[str, int]:
    """Run every fenced block of ``page``; return how many blocks of each language ran."""
    counts: dict[str, int] = {}
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem.replace('-', '_')}"}
    for index, (lang, code) in enumerate(FENCE.findall(page.read_text())):
        where = f"{page.name} block {index}"
        if lang == "python":
            exec(compile(code, where, "exec", dont_inherit=True), namespace)
        elif lang == "toml":
            tomllib.loads(code)
        elif lang == "yaml":
            yaml.safe_load(code)
        elif lang == "json":  # an excerpt of a report: its elisions ("...") removed, the rest must be JSON
            json.loads(re.sub(r",\s*\.\.\.", "", code.replace("[...]", "[]").replace("{...}", "{}")))
        elif lang == "bash":
            checked = subprocess.run(["bash", "-n"], input=code, text=True, capture_output=True)
            assert checked.returncode == 0, f"{where}: not valid bash: {checked.stderr}"
        elif lang != "text":
            raise AssertionError(f"{where}: a {lang!r} snippet no test runs")
        counts[lang] = counts.get(lang, 0) + 1
    return counts


def test_every_snippet_of_the_plugin_reference_runs() -> None:
    assert run_snippets(DOC).get("python", 0) >= 8


@pytest.mark.parametrize("page", [p for p in PAGES if p != DOC], ids=lambda p: p.name)
def test_every_snippet_of_every_page_runs(page: Path) -> None:
    run_snippets(page)


def test_the_pages_hold_the_snippets_they_had() -> None:
    """The site's pages that took the README's examples still hold them (and so still run them)."""
    counts = {page.name: run_snippets(page) for page in PAGES if page != DOC}
    assert counts["plans.md"].get("yaml", 0) >= 2 and counts["strategies.md"].get("yaml", 0) >= 1
    assert counts["writing-a-plugin.md"].get("python", 0) >= 3


def test_the_stability_promise_names_every_hook() -> None:
    from edgecraft import hookspecs
    from edgecraft.verify.report import REPORT_SCHEMA_ID

    text = (REPO / "docs" / "stability.md").read_text()
    assert all(f"`{hook}`" in text for hook in dir(hookspecs) if hook.startswith("edgecraft_"))
    assert REPORT_SCHEMA_ID in text


def test_the_reference_covers_every_hook_and_builtin_tag() -> None:
    from edgecraft import hookspecs
    from edgecraft.registry import build_registry

    text = DOC.read_text()
    hooks = [n for n in dir(hookspecs) if n.startswith("edgecraft_")]
    assert hooks and all(f"`{hook}`" in text for hook in hooks)
    registry = build_registry(plugins=["onnxruntime", "openvino", "tvm"])
    tags = {tag for p in registry.targets.values() for tag in p.obj[1].capabilities}
    assert tags and all(f"`{tag}`" in text for tag in tags), tags


def test_readme_links_the_reference_and_every_page() -> None:
    readme = (REPO / "README.md").read_text()
    assert "docs/plugins.md" in readme
    for page in PAGES:
        assert f"docs/{page.name}" in readme or page.name == "index.md", f"README does not link docs/{page.name}"
