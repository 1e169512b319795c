"""``edgecraft plugin new strategy|backend NAME [DIR]``: a complete plugin package to start from.

What it writes installs and conforms as generated (``pip install -e DIR && edgecraft plugin check
NAME`` exits 0), because the first thing an author does is run it, and the second is change it: a
scaffold that does not pass its own checks teaches nothing. The templates are Python strings (not
data files) so they ship inside the wheel with no package-data rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from edgecraft.errors import InputError
from edgecraft.scaffold import templates

Kind = Literal["strategy", "backend"]
_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class Names:
    """Every spelling of the plugin's name the templates need."""

    name: str  # strategy or target name in plans, and the entry-point name: "weight-clustering"
    distribution: str  # "edgecraft-weight-clustering"
    module: str  # "edgecraft_weight_clustering"
    cls: str  # "WeightClustering"

    @classmethod
    def of(cls, name: str) -> Names:
        if not _NAME.match(name):
            raise InputError(f"plugin name {name!r}: use lowercase letters, digits and single hyphens, starting "
                             "with a letter (it becomes the name in plans and the entry-point name)",
                             hint="e.g. edgecraft plugin new strategy weight-clustering")
        camel = "".join(part.capitalize() for part in name.split("-"))
        return cls(name, f"edgecraft-{name}", f"edgecraft_{name.replace('-', '_')}", camel)


def builtin_names() -> dict[str, str]:
    """Name -> what it names (plugin, strategy, backend, target), for everything edgecraft itself provides: the
    scaffold's name becomes an entry-point name and a strategy or target name, and must clash with none."""
    from importlib import metadata

    from edgecraft.registry import build_registry

    taken = {ep.name: "plugin" for ep in metadata.entry_points(group="edgecraft")
             if ep.dist is not None and ep.dist.name == "edgecraft"}
    registry = build_registry()
    for kind, table in (("strategy", registry.strategies), ("backend", registry.backends),
                        ("target", registry.targets)):
        taken.update({n: kind for n, p in table.items() if p.provenance.distribution == "edgecraft"})
    return taken


def files_for(kind: Kind, names: Names) -> dict[str, str]:
    """Relative path -> file content for a ``kind`` plugin called ``names.name``."""
    fields = {"name": names.name, "distribution": names.distribution, "module": names.module, "cls": names.cls,
              "kind": kind}
    common = {
        "pyproject.toml": templates.PYPROJECT,
        "README.md": templates.README_STRATEGY if kind == "strategy" else templates.README_BACKEND,
        f"src/{names.module}/__init__.py": templates.INIT,
        f"src/{names.module}/plugin.py": templates.PLUGIN_STRATEGY if kind == "strategy" else templates.PLUGIN_BACKEND,
        "tests/test_conformance.py": templates.TEST_STRATEGY if kind == "strategy" else templates.TEST_BACKEND,
    }
    if kind == "strategy":
        common[f"src/{names.module}/strategy.py"] = templates.STRATEGY
    else:
        common[f"src/{names.module}/backend.py"] = templates.BACKEND
    return {path: text.format(**fields).lstrip("\n") for path, text in common.items()}


def create(kind: Kind, name: str, directory: Path | None = None) -> tuple[Path, list[Path]]:
    """Write the package into ``directory`` (default ``./edgecraft-NAME``); refuse to overwrite anything."""
    if kind not in ("strategy", "backend"):
        raise InputError(f"plugin kind {kind!r}: expected 'strategy' or 'backend'")
    names = Names.of(name)
    taken = builtin_names()
    if name in taken:
        raise InputError(f"plugin name {name!r} is a built-in {taken[name]}'s name; a package using it would clash "
                         "with edgecraft's own plugin (every command would stop on the collision)",
                         hint=f"choose another name, e.g. my-{name}")
    root = Path(directory) if directory is not None else Path(names.distribution)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise InputError(f"{root} already exists and is not an empty folder; nothing was written",
                         hint="name a new folder: edgecraft plugin new KIND NAME DIR")
    written: list[Path] = []
    for relative, text in files_for(kind, names).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return root, written
