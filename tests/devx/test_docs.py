"""Every snippet of docs/plugins.md runs: the python blocks in order in one namespace (as a reader would
paste them), the toml and yaml blocks parse. A doc that drifts from the code fails here."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "plugins.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.M | re.S)


def test_every_snippet_of_the_plugin_reference_runs() -> None:
    blocks = FENCE.findall(DOC.read_text())
    assert sum(1 for lang, _ in blocks if lang == "python") >= 8
    namespace: dict[str, object] = {"__name__": "docs_plugins"}
    for index, (lang, code) in enumerate(blocks):
        if lang == "python":
            exec(compile(code, f"{DOC.name} block {index}", "exec", dont_inherit=True), namespace)
        elif lang == "toml":
            tomllib.loads(code)
        elif lang == "yaml":
            yaml.safe_load(code)
        else:
            raise AssertionError(f"block {index}: a {lang!r} snippet no test runs")


def test_the_reference_covers_every_hook_and_builtin_tag() -> None:
    from edgecraft import hookspecs
    from edgecraft.registry import build_registry

    text = DOC.read_text()
    hooks = [n for n in dir(hookspecs) if n.startswith("edgecraft_")]
    assert hooks and all(f"`{hook}`" in text for hook in hooks)
    registry = build_registry(plugins=["onnxruntime", "openvino", "tvm"])
    tags = {tag for p in registry.targets.values() for tag in p.obj[1].capabilities}
    assert tags and all(f"`{tag}`" in text for tag in tags), tags


def test_readme_links_the_reference() -> None:
    assert "docs/plugins.md" in (REPO / "README.md").read_text()
