"""What the kit sees of ``apply()`` from inside a real build: the model it was given, before and after, and
what it returned, so it can name the promises a valid-looking StepResult still breaks.

The builder's own checks (:mod:`edgecraft.plugin_checks`) refuse results a plan run cannot use. These are
the quieter breakages a run survives and a report then misstates: a step that returns its input unchanged
(the report claims a compression that did not happen), one that edits the input file in place (the file
belongs to the build; another target or a retry reads it), a changed or renamed model output (the
contracts and metrics read outputs by position and name), and NaN or infinity in the details (the JSON
report silently writes ``null``).

The probe is a subclass of the strategy under test whose ``apply`` records each call and delegates to the
strategy's own; the kit swaps it into its registry for the check, so the real builder runs it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@dataclasses.dataclass
class ApplyCall:
    """One ``apply()`` call: the input handle, its fingerprint before and after, and the result."""

    given: Any
    before: str | None
    after: str | None = None
    result: Any = None
    #: What it broke, judged right after the call (the build's work folder is gone by the end of the build).
    problems: list[str] = dataclasses.field(default_factory=list)


def fingerprint(handle: Any) -> str | None:
    """A content hash of a model handle: the ONNX file's bytes, or a torch module's structure and weights
    (None for a native model: its format is the backend's)."""
    from edgecraft.models import OnnxModel, TorchModel

    if isinstance(handle, OnnxModel):
        path = Path(handle.path)
        return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    if isinstance(handle, TorchModel):
        digest = hashlib.sha256(repr(handle.module).encode())
        for name, tensor in handle.module.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()
    return None


@contextmanager
def probing(registry: Any, name: str) -> Iterator[list[ApplyCall]]:
    """Swap strategy ``name`` in ``registry`` for a recording subclass while the block runs."""
    provided = registry.strategies[name]
    calls: list[ApplyCall] = []
    original = provided.obj

    def apply(self: Any, step: Any, model: Any, ctx: Any) -> Any:
        call = ApplyCall(model, fingerprint(model))
        calls.append(call)
        call.result = original.apply(self, step, model, ctx)
        call.after = fingerprint(model)
        call.problems = problems(call)
        return call.result

    probe = type(original.__name__, (original,), {"apply": apply, "__module__": original.__module__,
                                                   "__qualname__": original.__qualname__})
    registry.strategies[name] = dataclasses.replace(provided, obj=probe)
    try:
        yield calls
    finally:
        registry.strategies[name] = provided


def problems(call: ApplyCall) -> list[str]:
    """The promises one recorded ``apply()`` call broke, one line each (none for a call that raised)."""
    from edgecraft.models import OnnxModel

    result, given = call.result, call.given
    model = getattr(result, "model", None)
    if model is None:
        return []
    found = []
    if isinstance(given, OnnxModel) and call.before is not None and call.after != call.before:
        found.append(f"edited its input ONNX file {Path(given.path).name} in place; expected a new file under "
                     "ctx.step_dir() (the input belongs to the build and is read again)")
    unchanged_path = isinstance(given, OnnxModel) and isinstance(model, OnnxModel) and \
        Path(model.path).resolve() == Path(given.path).resolve()
    if (model is given or unchanged_path) and call.before is not None and fingerprint(model) == call.before:
        found.append("returned its input model unchanged; a step with nothing to do should refuse in resolve() "
                     "(raise ctx.error(...)), so the report never claims a compression that did not happen")
    given_io, io = getattr(given, "io", None), getattr(model, "io", None)
    if given_io is not None and io is not None and [t.name for t in io.outputs] != \
            [t.name for t in given_io.outputs]:
        found.append(f"returned a model whose outputs are {[t.name for t in io.outputs]}; expected the input's "
                     f"{[t.name for t in given_io.outputs]} (contracts and metrics read outputs by name)")
    bad = non_finite(getattr(result, "details", None))
    if bad:
        found.append(f"details hold a non-finite number at {bad}; the JSON report would write null (report "
                     "None or leave the key out)")
    return found


def non_finite(value: Any, where: str = "details") -> str | None:
    """The path of the first NaN or infinity in a JSON-like value (numpy scalars included), else None."""
    if isinstance(value, dict):
        for key, item in value.items():
            found = non_finite(item, f"{where}[{key!r}]")
            if found:
                return found
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = non_finite(item, f"{where}[{index}]")
            if found:
                return found
        return None
    if isinstance(value, bool | str) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isfinite(number) else where


def graph_outputs(onnx_path: Path) -> list[tuple[str, tuple[Any, ...]]] | None:
    """(name, shape) of each output of an ONNX file (symbolic dims by name), or None if it does not exist."""
    if not onnx_path.is_file():
        return None
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    return [(o.name, tuple(d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim)) for o in graph.output]
