"""edgecraft's module import graph, read from the source (no import is executed).

Every ``import`` statement counts as an arrow, at module level or inside a function (a lazy import is still
a dependency of the design: it only moves the moment it is paid). Imports under ``if TYPE_CHECKING:`` do
not count: they exist for annotations and never run. ``tests/test_architecture.py`` checks the graph against
``docs/architecture.md``: no cycle, the layer rules, module sizes.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

#: Source folder -> import prefix (setup.py maps them the same way).
PACKAGE_ROOTS = {"sdk": "edgecraft", "plugins": "edgecraft.plugins", "backends": "edgecraft.backends"}


@dataclass
class ImportGraph:
    """Modules (dotted name -> file) and their import arrows (dotted name -> imported edgecraft modules)."""

    files: dict[str, Path] = field(default_factory=dict)
    arrows: dict[str, set[str]] = field(default_factory=dict)
    #: module -> top-level names of the third-party packages it imports (``onnxruntime``, ``torch``...).
    external: dict[str, set[str]] = field(default_factory=dict)

    def resolve(self, dotted: str) -> str | None:
        """The edgecraft module a dotted name lives in (``edgecraft.x.y.Name`` -> ``edgecraft.x.y``), if any."""
        while dotted:
            if dotted in self.files:
                return dotted
            dotted = dotted.rpartition(".")[0]
        return None

    def cycles(self) -> list[list[str]]:
        """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        on_stack: set[str] = set()
        stack: list[str] = []
        found: list[list[str]] = []
        counter = 0
        for root in sorted(self.files):
            if root in index:
                continue
            work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(self.arrows[root])))]
            index[root] = low[root] = counter
            counter += 1
            stack.append(root)
            on_stack.add(root)
            while work:
                node, children = work[-1]
                child = next(children, None)
                if child is not None:
                    if child not in index:
                        index[child] = low[child] = counter
                        counter += 1
                        stack.append(child)
                        on_stack.add(child)
                        work.append((child, iter(sorted(self.arrows[child]))))
                    elif child in on_stack:
                        low[node] = min(low[node], index[child])
                    continue
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
        return found


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
                    isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"):
                for child in node.body:
                    skipped.update(id(n) for n in ast.walk(child))
    return skipped


def _imported_names(node: ast.Import | ast.ImportFrom, package: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = package
        for _ in range(node.level - 1):
            base = base.rpartition(".")[0]
        module = f"{base}.{node.module}" if node.module else base
    else:
        module = node.module or ""
    return [module, *(f"{module}.{alias.name}" for alias in node.names)]


def read_graph(repo: Path) -> ImportGraph:
    graph = ImportGraph()
    for folder, prefix in PACKAGE_ROOTS.items():
        for path in sorted((repo / folder).rglob("*.py")):
            parts = list(path.relative_to(repo / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            graph.files[".".join([prefix, *parts])] = path
    for module, path in graph.files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        skipped = _type_checking_nodes(tree)
        arrows: set[str] = set()
        external: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skipped or not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            names = _imported_names(node, package)
            if not (isinstance(node, ast.ImportFrom) and node.level) and not names[0].startswith("edgecraft"):
                external.add(names[0].partition(".")[0])
            for name in names:
                target = graph.resolve(name)
                if target is not None and target != module:
                    arrows.add(target)
        graph.arrows[module] = arrows
        graph.external[module] = external
    return graph


def layer_of(module: str) -> tuple[str, str | None]:
    """('sdk', None), ('plugins', NAME) or ('backends', NAME) for an edgecraft module."""
    for folder in ("plugins", "backends"):
        prefix = f"edgecraft.{folder}"
        if module == prefix:
            return folder, None
        if module.startswith(prefix + "."):
            return folder, module.split(".")[2]
    return "sdk", None


def layer_violations(graph: ImportGraph) -> list[str]:
    """Arrows the layout forbids: sdk -> plugins/backends, plugin -> other plugin or backend, backend ->
    other backend or plugin."""
    bad = []
    for module, targets in sorted(graph.arrows.items()):
        layer, name = layer_of(module)
        for target in sorted(targets):
            target_layer, target_name = layer_of(target)
            if target_layer == "sdk":
                continue
            if layer == "sdk" or target_layer != layer or (name is not None and target_name not in (name, None)):
                bad.append(f"{module} -> {target}")
    return bad
