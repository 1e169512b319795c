"""The design in docs/architecture.md, checked on the source: data flows one way, each folder imports only
what it may, modules stay small.

These tests read the code (no import is executed), so they are fast and they fail the moment a change
adds a cycle or an arrow the layout forbids, with the modules named.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from architecture_graph import ImportGraph, layer_of, layer_violations, read_graph

REPO = Path(__file__).resolve().parents[1]
#: The largest module the layout allows in sdk/, plugins/ and backends/ (lines, docstrings included).
MAX_MODULE_LINES = 450
#: ``type: ignore`` comments allowed in the whole package (each one a place the types do not say the truth).
MAX_TYPE_IGNORES = 10
#: Runtimes: only their backend package may import them (the SDK's shared ONNX Runtime probe excepted, see below).
RUNTIMES = {"onnxruntime": "onnxruntime", "openvino": "openvino", "nncf": "openvino", "tvm": "tvm",
            "executorch": "executorch", "torchao": "executorch"}
#: SDK modules allowed to import a runtime, and why. ONNX Runtime is a core dependency (not an extra) and the
#: SDK's reference runtime: the probe service strategies use (architecture: "an ONNX Runtime session for
#: probing" lives once in the SDK), the conformance kit's reference outputs, and the logging set-up that
#: quiets its C++ log. Everyone else, backends included, goes through those services.
SDK_RUNTIME_USERS = {
    "edgecraft.torchkit.probe": {"onnxruntime"},
    "edgecraft.testing.conformance": {"onnxruntime"},  # the backend check gets its reference from here
    "edgecraft.logging_setup": {"onnxruntime"},
}


#: The stages a plan flows through, in order (docs/architecture.md): a stage may import the ones before it,
#: never one after it. Modules outside these packages are the foundation every stage shares (plan, registry,
#: contexts, models, datasets...) and import no stage; the edges drive the stages from outside (the CLI, the
#: conformance kit, the run's pre-flight checks, the process supervising the CLI).
STAGES = ("compile", "assembly", "verify", "execute", "runner", "search")
EDGES = ("cli", "testing", "preflight", "scaffold", "supervise")


def _stage_rank(module: str) -> int | None:
    """The stage's position for ``edgecraft.STAGE[...]``, len(STAGES) for an edge, None for the foundation."""
    part = module.split(".")[1] if module.count(".") else ""
    if part in STAGES:
        return STAGES.index(part)
    return len(STAGES) if part in EDGES else None


@pytest.fixture(scope="module")
def graph() -> ImportGraph:
    return read_graph(REPO)


def test_the_graph_is_read(graph: ImportGraph) -> None:
    """The reader finds the package and its arrows (a broken reader would pass every test below)."""
    assert len(graph.files) > 100
    assert "edgecraft.registry" in graph.files
    assert "edgecraft.hookspecs" in graph.arrows["edgecraft.registry"]
    assert "pluggy" in graph.external["edgecraft.registry"]


def test_no_import_cycle(graph: ImportGraph) -> None:
    cycles = graph.cycles()
    assert not cycles, "import cycles (lazy imports count; TYPE_CHECKING ones do not):\n" + "\n".join(
        " <-> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_a_cycle() -> None:
    fake = ImportGraph(files={"a": Path("a"), "b": Path("b"), "c": Path("c")},
                       arrows={"a": {"b"}, "b": {"c"}, "c": {"a"}})
    assert fake.cycles() == [["a", "b", "c"]]
    fake.arrows["c"] = set()
    assert fake.cycles() == []


def test_each_folder_imports_only_what_it_may(graph: ImportGraph) -> None:
    """sdk/ never imports plugins/ or backends/; a plugin never imports another plugin or a backend; a backend
    never imports another backend or a plugin (docs/architecture.md, "Layout")."""
    assert layer_violations(graph) == []


def test_data_flows_one_way(graph: ImportGraph) -> None:
    """plan -> compile -> assembly (build) -> verify (measure, judge, report) -> execute -> runner -> search: no
    stage imports a later one, and the foundation imports no stage (lazy imports count)."""
    back = []
    for module, targets in sorted(graph.arrows.items()):
        if layer_of(module)[0] != "sdk":
            continue
        rank = _stage_rank(module)
        for target in sorted(targets):
            target_rank = _stage_rank(target)
            if target_rank is None or target_rank == rank:
                continue
            if rank is None or target_rank > rank:
                back.append(f"{module} -> {target}")
    assert back == []


def test_the_stage_check_sees_a_back_arrow() -> None:
    builder, gate = _stage_rank("edgecraft.assembly.builder"), _stage_rank("edgecraft.verify.gate")
    assert builder == STAGES.index("assembly")
    assert gate is not None and builder is not None and gate > builder
    assert _stage_rank("edgecraft.registry") is None
    assert _stage_rank("edgecraft.cli") == len(STAGES)


def test_runtimes_live_in_their_backend(graph: ImportGraph) -> None:
    """No strategy names a runtime: onnxruntime, openvino/nncf and tvm are imported only by their backend."""
    bad = []
    for module, packages in sorted(graph.external.items()):
        layer, name = layer_of(module)
        for package in sorted(packages & set(RUNTIMES)):
            if layer == "backends" and name == RUNTIMES[package]:
                continue
            if layer == "sdk" and package in SDK_RUNTIME_USERS.get(module, set()):
                continue
            bad.append(f"{module} imports {package}")
    assert bad == []


def test_modules_stay_small() -> None:
    big = []
    for folder in ("sdk", "plugins", "backends"):
        for path in sorted((REPO / folder).rglob("*.py")):
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > MAX_MODULE_LINES:
                big.append(f"{path.relative_to(REPO)}: {lines} lines")
    assert big == [], f"modules over {MAX_MODULE_LINES} lines (split them by job)"


def test_type_ignores_are_few() -> None:
    found = []
    for folder in ("sdk", "plugins", "backends"):
        for path in sorted((REPO / folder).rglob("*.py")):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if re.search(r"#\s*type:\s*ignore", line):
                    found.append(f"{path.relative_to(REPO)}:{number}")
    listing = "\n".join(found)
    assert len(found) <= MAX_TYPE_IGNORES, f"{len(found)} type: ignore (at most {MAX_TYPE_IGNORES}):\n{listing}"


def test_the_architecture_page_names_what_exists(graph: ImportGraph) -> None:
    """docs/architecture.md stays true: every plugin, backend and stage package is on the page, and every
    ``edgecraft.…`` module the page names exists."""
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    for folder in ("plugins", "backends"):
        for package in sorted(p.name for p in (REPO / folder).iterdir() if (p / "__init__.py").is_file()):
            assert f"`{package}`" in text, f"docs/architecture.md does not name {folder}/{package}"
    for stage in STAGES:
        assert f"sdk/{stage}" in text and f"`edgecraft.{stage}`" in text, stage
    for named in sorted(set(re.findall(r"`(edgecraft(?:\.[a-z_]+)+)", text))):
        assert graph.resolve(named) is not None, f"docs/architecture.md names {named}, which does not exist"
