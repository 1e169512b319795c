"""Templates of ``edgecraft plugin new`` (``str.format`` fields: name, distribution, module, cls, kind).

Braces that must survive formatting are doubled. Each template is what a careful author would write
by hand: registration in a light entry module, a strict params/options model with descriptions (they
appear in ``edgecraft schema``), and a test that runs the conformance kit.
"""

PYPROJECT = '''
[build-system]
requires = ["setuptools>=69", "wheel"]
build-backend = "setuptools.build_meta"

[project]
name = "{distribution}"
version = "0.1.0"
description = "An edgecraft {kind} plugin: {name}."
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["edgecraft>=0.1", "onnx>=1.17", "numpy>=1.26"]

[project.optional-dependencies]
dev = ["pytest>=8"]

# The only way edgecraft finds a plugin: an entry point in the `edgecraft` group.
[project.entry-points.edgecraft]
{name} = "{module}.plugin"

[tool.setuptools.packages.find]
where = ["src"]

[tool.pytest.ini_options]
testpaths = ["tests"]
'''

INIT = '''
"""{distribution}: an edgecraft {kind} plugin."""

__version__ = "0.1.0"
'''

PLUGIN_STRATEGY = '''
"""Entry point: registration only. Keep it light: `edgecraft plugins` imports it on every call."""

from __future__ import annotations

from collections.abc import Callable

from edgecraft import hookimpl


@hookimpl
def edgecraft_register_strategies(register: Callable[[type], None]) -> None:
    from {module}.strategy import {cls}

    register({cls})
'''

PLUGIN_BACKEND = '''
"""Entry point: registration only. Keep it light: `edgecraft plugins` imports it on every call."""

from __future__ import annotations

from collections.abc import Callable

from edgecraft import hookimpl


@hookimpl
def edgecraft_register_backends(register: Callable[[type], None]) -> None:
    from {module}.backend import {cls}Backend

    register({cls}Backend)
'''

STRATEGY = '''
"""The ``{name}`` strategy: an ONNX-stage step (replace the body of ``apply`` with your transform).

As generated it rewrites the graph without changing what it computes (it drops doc strings and
records facts about the weights), which shows the whole contract: read ``model.path``, write a new
file under ``ctx.step_dir()``, return ``StepResult(OnnxModel(new_path, model.io, lineage), details)``
with JSON-ready details. See edgecraft's docs/plugins.md.
"""

from __future__ import annotations

from edgecraft import (
    CompileContext,
    ModelHandle,
    OnnxModel,
    Resolution,
    ResolvedStep,
    RunContext,
    Stage,
    StepResult,
    Strategy,
    StrategyParams,
)
from pydantic import Field


class {cls}Params(StrategyParams):
    """Params of ``{name}``: strict (an unknown key is a plan error).

    Field descriptions show in `edgecraft schema`, so editors complete and explain them.
    """

    strip_doc_strings: bool = Field(True, description="Remove doc strings from the graph's nodes.")


class {cls}(Strategy[{cls}Params]):
    name = "{name}"
    params_model = {cls}Params
    summary = "{name}: an ONNX graph rewrite (edit me)"

    def resolve(self, params: {cls}Params, ctx: CompileContext) -> Resolution:
        # Compile time: decide per target or refuse with ctx.error(...) (exit 2, names step and target).
        # params are the plan's, frozen: return filled-in ones as params.model_copy(update={{...}}).
        # Every target runs ONNX-stage steps; test capability tags only for what you need beyond that
        # (e.g. ctx.target.has("onnx.int8.qdq")). Nothing may be built or trained here.
        return Resolution(Stage.ONNX, "onnx-rewrite", params, notes=["graph rewritten in place of the export"])

    def apply(self, step: ResolvedStep, model: ModelHandle, ctx: RunContext) -> StepResult:
        import onnx
        from onnx import numpy_helper

        assert isinstance(model, OnnxModel)  # the stage resolve() chose
        graph_model = onnx.load(str(model.path))
        if step.params["strip_doc_strings"]:
            for node in graph_model.graph.node:
                node.doc_string = ""
        weight_bytes = sum(numpy_helper.to_array(t).nbytes for t in graph_model.graph.initializer)
        out = ctx.step_dir() / "{module}.onnx"  # a new file: never edit model.path in place
        onnx.save(graph_model, str(out))
        details = {{"nodes": len(graph_model.graph.node), "weight_bytes": int(weight_bytes)}}
        return StepResult(OnnxModel(out, model.io, [*model.lineage, {{"{name}": details}}]), details)
'''

BACKEND = '''
"""The ``{name}`` target: ONNX Runtime on the CPU with a chosen graph-optimization level.

The artifact is an ONNX file (so the target declares the ``onnx.graph`` capability: strategies that
edit the ONNX file know their edits ship as is). Replace the runtime calls with yours; keep the
shapes of ``import_onnx``/``save``/``load`` (see edgecraft's docs/plugins.md).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
from edgecraft import Backend, InputError, Session, TargetInfo, TargetOptions
from pydantic import Field

ARTIFACT = "model.onnx"


class {cls}Options(TargetOptions):
    """Options of the ``{name}`` target: strict (an unknown key is a plan error).

    Field descriptions show in `edgecraft schema`, so editors complete and explain them.
    """

    graph_optimization: Literal["disable", "basic", "extended", "all"] = Field(
        "basic", description="ONNX Runtime graph optimization level used when loading the artifact.")


class {cls}Session(Session):
    def __init__(self, path: Path, options: {cls}Options, threads: int) -> None:
        import onnxruntime as ort

        levels = {{"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
                   "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                   "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                   "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}}
        so = ort.SessionOptions()
        so.graph_optimization_level = levels[options.graph_optimization]
        so.intra_op_num_threads = threads
        self._session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self._session.get_inputs()]

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(o) for o in self._session.run(None, dict(feeds))]

    def describe(self) -> dict[str, Any]:
        import onnxruntime as ort

        return {{"runtime": f"onnxruntime {{ort.__version__}}", "provider": "CPUExecutionProvider"}}

    def close(self) -> None:
        vars(self).pop("_session", None)  # the runtime frees the session with its last reference


class {cls}Backend(Backend):
    name = "{name}"
    summary = "{name}: ONNX Runtime on the CPU (edit me)"

    def targets(self) -> list[TargetInfo]:
        # Cheap: no runtime import here (`edgecraft plugins` calls it).
        return [TargetInfo(name="{name}", summary="ONNX Runtime, CPU, chosen graph optimizations",
                           options_model={cls}Options, capabilities=frozenset({{"onnx.graph"}}),
                           native_format="onnx")]

    def runtime_versions(self) -> dict[str, str]:
        from importlib.metadata import version

        return {{"onnxruntime": version("onnxruntime")}}

    def check_available(self, target: str, options: TargetOptions) -> None:
        try:
            import onnxruntime  # noqa: F401
        except ImportError as exc:
            raise InputError("target {name} needs onnxruntime", hint="pip install onnxruntime") from exc

    def import_onnx(self, onnx_path: Path, target: str, options: TargetOptions, work_dir: Path) -> Path:
        return Path(onnx_path)  # the native model of this backend is the ONNX file itself

    def save(self, native: Any, target: str, options: TargetOptions, out_dir: Path) -> list[Path]:
        out = out_dir / ARTIFACT
        shutil.copyfile(native, out)
        return [out]

    def load(self, artifact_dir: Path, target: str, options: TargetOptions, threads: int) -> Session:
        assert isinstance(options, {cls}Options)
        return {cls}Session(artifact_dir / ARTIFACT, options, threads)
'''

TEST_STRATEGY = '''
"""The conformance kit on this plugin (install it first: pip install -e .).

The same checks as `edgecraft plugin check {name}`.
"""

from edgecraft.testing import assert_conforms


def test_{module}_conforms() -> None:
    assert_conforms("{name}", targets=["ort-cpu"])
'''

TEST_BACKEND = '''
"""The conformance kit on this plugin (install it first: pip install -e .).

The same checks as `edgecraft plugin check {name}`.
"""

from edgecraft.testing import assert_conforms


def test_{module}_conforms() -> None:
    assert_conforms("{name}")
'''

README_STRATEGY = '''
# {distribution}

An [edgecraft](https://github.com/) strategy plugin: `{name}`.

```bash
pip install -e ".[dev]"             # editable: edits rebuild cached artifacts (the cache key hashes the source)
edgecraft plugins                   # lists {name} with this distribution
edgecraft plugin check {name}       # the conformance kit; exit 0 when it conforms
pytest                              # the same kit, from tests/test_conformance.py
```

Use it in a plan:

```yaml
steps:
  - strategy: {name}
    params: {{strip_doc_strings: true}}
```

Where to go next: `src/{module}/strategy.py` (`resolve` decides per target at compile time, `apply`
transforms the model at run time) and edgecraft's `docs/plugins.md` (every hook, the capability
tags, what `apply` must return, which errors give which exit code).
'''

README_BACKEND = '''
# {distribution}

An [edgecraft](https://github.com/) backend plugin providing the target `{name}`.

```bash
pip install -e ".[dev]"             # editable: edits rebuild cached artifacts (the cache key hashes the source)
edgecraft plugins                   # lists the {name} target with this distribution
edgecraft plugin check {name}       # the conformance kit; exit 0 when it conforms
pytest                              # the same kit, from tests/test_conformance.py
```

Use it in a plan:

```yaml
targets:
  - target: {name}
    options: {{graph_optimization: basic}}
```

Where to go next: `src/{module}/backend.py` and edgecraft's `docs/plugins.md` (the capability tags a
target declares, what `import_onnx`/`save`/`load` must return, what quantization asks of a target).
'''
