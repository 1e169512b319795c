"""Model sources: where the plan's model comes from, as plugin kinds, and the loader the run shares.

A model source kind (``onnx``, ``torch``, ``huggingface``, or a plugin's) is a class with its own
strict params model, registered through ``edgecraft_register_model_sources`` exactly like a
strategy; the core lists none of them. A kind says what I/O its model has (cheaply, at compile
time), loads the model as a torch or ONNX handle, and fingerprints it for the cache key. The
:class:`ModelSourceLoader` wraps one kind and the plan's params for a run: it applies the plan's
``model.inputs`` overrides, checks that the I/O is concrete, and hands out fresh copies.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

from edgecraft.errors import InputError
from edgecraft.modelio import ModelIO, apply_overrides
from edgecraft.models import OnnxModel, Stage, TorchModel
from edgecraft.plan import SourceParams

if TYPE_CHECKING:
    import onnx

#: A model source kind's own params model.
P = TypeVar("P", bound=SourceParams)


@dataclass
class SourceContext:
    """What a model source may use: the plan's folder (relative paths) and a scratch folder it owns."""

    base_dir: Path
    #: A folder for files the source writes (e.g. an export); lives as long as the run.
    scratch: Path | None = None
    extras: dict[str, Any] = field(default_factory=dict)


class ModelSourceKind(ABC, Generic[P]):
    """Subclass this and register the class from ``edgecraft_register_model_sources``.

    Parametrize it with the kind's params model (``class OnnxFileSource(ModelSourceKind[OnnxSourceParams])``)
    so its methods take that model, typed: the plan loader validates ``model:`` with ``params_model`` first.
    """

    #: The ``model.kind`` value plans use.
    kind: ClassVar[str]
    #: Strict params (subclass :class:`~edgecraft.plan.SourceParams` with ``kind: Literal[...]``).
    params_model: ClassVar[type[SourceParams]]
    summary: ClassVar[str] = ""
    #: The stage of the handle ``load`` returns: torch-level steps (pruning, distillation) need TORCH.
    stage: ClassVar[Stage] = Stage.ONNX

    @abstractmethod
    def io(self, params: P, ctx: SourceContext) -> ModelIO:
        """The model's own I/O (symbolic dimensions allowed); the plan's ``inputs`` are applied after."""

    @abstractmethod
    def load(self, params: P, io: ModelIO, ctx: SourceContext) -> TorchModel | OnnxModel:
        """The model as a handle carrying ``io`` (the completed I/O). Called once per run."""

    def fingerprint(self, params: P, handle: TorchModel | OnnxModel, ctx: SourceContext) -> str:
        """Hash of the model's content for the cache key (default: the ONNX bytes or the torch weights)."""
        if isinstance(handle, OnnxModel):
            from edgecraft.loading import file_sha256

            return file_sha256(handle.path)
        return torch_fingerprint(handle.module, ctx.base_dir)

    def export_options(self, params: P) -> dict[str, Any]:
        """Options for :func:`export_onnx` (torch sources: opset, exporter)."""
        return {}

    def describe(self, params: P) -> str:
        """One line for logs and reports."""
        text = getattr(params, "path", None) or getattr(params, "factory", None) or ""
        return f"{self.kind} {text}".strip()


#: A model fingerprint that keys nothing: unique to one run, with the reason after ': ' (the report shows it).
UNCACHED_PREFIX = "uncached-"


def torch_fingerprint(module: Any, project_dir: Path | None = None) -> str:
    """The torch model's weights, structure and, with ``project_dir``, the code it runs
    (:mod:`edgecraft.code_fingerprint`); code without a file makes the key unique to this run: the model is
    rebuilt, never served from an artifact built from other code (the note says so)."""
    digest = hashlib.sha256(repr(module).encode())
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    if project_dir is not None:
        from edgecraft.code_fingerprint import code_fingerprint

        code, files = code_fingerprint(module, project_dir)
        if code is None:
            import uuid

            return (f"{UNCACHED_PREFIX}{uuid.uuid4().hex}: the code of {', '.join(files)} has no source file to "
                    "key the cache on; the artifact is rebuilt on every run")
        digest.update(code.encode())
    return digest.hexdigest()


def check_onnx_file(path: Path, *, where: str) -> onnx.ModelProto:
    """Load and check an ONNX file (external data stays on disk); a clear error when it is not one."""
    import onnx

    if not path.is_file():
        raise InputError(f"{where}: model file {path} does not exist", hint="paths are relative to the plan file")
    try:
        proto = onnx.load(str(path), load_external_data=False)
        onnx.checker.check_model(str(path) if path.stat().st_size > (1 << 30) else proto)
    except Exception as exc:
        raise InputError(f"{where}: {path} is not a valid ONNX model: {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:300] if str(exc) else ''}") from exc
    return proto


class ModelSourceLoader:
    """Loads the plan's model once, hands out fresh copies, and fingerprints it for the cache key."""

    def __init__(self, kind: ModelSourceKind, params: SourceParams, base_dir: Path) -> None:
        self.source_kind = kind
        self.params = params
        self.base_dir = base_dir
        self.ctx = SourceContext(base_dir)
        self._io: ModelIO | None = None
        self._handle: TorchModel | OnnxModel | None = None
        self._fingerprint: str | None = None

    @property
    def kind(self) -> Literal["torch", "onnx"]:
        """'torch' when the source yields a torch module (torch-level steps apply), else 'onnx'."""
        return "torch" if self.source_kind.stage == Stage.TORCH else "onnx"

    def io(self) -> ModelIO:
        """The completed I/O: the model's own, with the plan's ``model.inputs`` applied."""
        if self._io is None:
            own = self.source_kind.io(self.params, self.ctx)
            self._io = apply_overrides(own, self.params.inputs)
        return self._io

    def _load(self) -> TorchModel | OnnxModel:
        if self._handle is None:
            io = self.io()
            io.check_concrete()
            handle = self.source_kind.load(self.params, io, self.ctx)
            if isinstance(handle, TorchModel):
                check_torch_runs(handle, field="model.input_shape" if getattr(self.params, "input_shape", None)
                                 else "model.inputs")
            self._handle = handle
        return self._handle

    def fresh(self) -> TorchModel | OnnxModel:
        """A copy the steps may mutate (the loaded original is kept intact as the teacher)."""
        handle = self._load()
        if isinstance(handle, OnnxModel):
            return OnnxModel(handle.path, handle.io, [])
        return handle.copy()

    def original_torch(self) -> TorchModel:
        """The plan's torch model as loaded (read-only by convention)."""
        handle = self._load()
        if not isinstance(handle, TorchModel):
            raise InputError("model: this step needs a torch model; the plan's model is an ONNX graph",
                             hint="use a torch or huggingface model source")
        return handle

    def original_copy(self) -> TorchModel:
        """A deep copy of the plan's torch model, safe to hand to plugin code."""
        return self.original_torch().copy()

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = self.source_kind.fingerprint(self.params, self._load(), self.ctx)
        return self._fingerprint

    def export_options(self) -> dict[str, Any]:
        return self.source_kind.export_options(self.params)


def check_torch_runs(handle: TorchModel, *, field: str = "model.inputs") -> None:
    """Run the module once on stand-in inputs of its declared I/O, so a wrong declaration fails here."""
    import torch

    feeds = handle.example_inputs(batch=1)
    try:
        with torch.no_grad():
            handle.module.eval()
            result = handle.module(*feeds)
    except Exception as exc:
        shapes = {t.name: list(t.concrete(1)) for t in handle.io.inputs}
        raise InputError(f"{field}: the torch model does not accept inputs {shapes}: "
                         f"{type(exc).__name__}: {str(exc)[:300]}") from exc
    outputs = result if isinstance(result, tuple | list) else (result,)
    if not all(isinstance(o, torch.Tensor) for o in outputs):
        raise InputError(f"model: the torch model returned {type(result).__name__}; edgecraft needs a tensor or a "
                         "tuple of tensors (wrap the model so forward returns them)")
    if handle.io.outputs and len(outputs) != len(handle.io.outputs):
        raise InputError(f"model.outputs: the torch model returns {len(outputs)} tensors but the plan names "
                         f"{len(handle.io.outputs)} outputs ({handle.io.output_names})")


#: The exporters :func:`export_onnx` knows. 'auto' is TorchScript, then dynamo when TorchScript fails.
EXPORTERS = ("auto", "dynamo", "torchscript")


def export_onnx(model: TorchModel, path: Path, *, opset: int = 18, exporter: str = "dynamo",
                attention: str | None = None) -> OnnxModel:
    """Export with every input and output named, and dynamic batch (and any other dynamic) axes kept.

    ``exporter``: 'dynamo' (torch.export based), 'torchscript' (the legacy tracer) or 'auto': TorchScript
    first, dynamo when TorchScript cannot export the model (ops it has no ONNX form for, such as the
    decomposed quantize ops of QAT). ``attention``: the Hugging Face attention implementation the graph
    is exported with ('eager', 'sdpa'; None keeps the model's own); the model is switched back after.
    The exporter and attention that were used are recorded in the ONNX model's lineage.
    """
    if exporter not in EXPORTERS:
        raise InputError(f"model.exporter: unknown exporter {exporter!r}", hint=f"one of {', '.join(EXPORTERS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    from edgecraft.torchkit.attention import AttentionImplementation, attention_models, current_attention

    module = model.module.eval()
    hf_models = attention_models(module)
    switch = AttentionImplementation(attention or "", hf_models if attention else [])
    try:
        switch.__enter__()
    except ValueError as exc:  # transformers: this model has no such attention implementation
        raise InputError(f"model.attention: {attention!r} does not apply to this model: {str(exc)[:300]}",
                         hint="use model.attention: auto (the model's own implementation)") from exc
    try:
        used_attention = sorted({str(current_attention(m)) for m in hf_models})
        if exporter != "auto":
            _export(model, path, opset=opset, exporter=exporter)
            used = exporter
        else:
            try:
                _export(model, path, opset=opset, exporter="torchscript")
                used = "torchscript"
            except InputError as first:
                logging.getLogger(__name__).info("the TorchScript exporter failed (%s); exporting with dynamo",
                                                 first.message)
                _export(model, path, opset=opset, exporter="dynamo")
                used = "dynamo (TorchScript failed)"
    finally:
        switch.__exit__()
    entry: dict[str, Any] = {"export": {"exporter": used, "opset": opset}}
    if used_attention:
        entry["export"]["attention"] = ", ".join(used_attention)
    return OnnxModel(path, model.io, [*model.lineage, entry])


def _export(model: TorchModel, path: Path, *, opset: int, exporter: str) -> None:
    """One export with one exporter; a failure is an InputError naming it (the file is removed)."""
    import warnings

    import onnx
    import torch

    module = model.module.eval()
    io = model.io
    example = model.example_inputs(batch=2)  # batch 2: a batch of 1 would be specialized away
    dynamic = model.dynamic_axes()
    input_names, output_names = io.input_names, io.output_names or ["output"]
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if exporter == "dynamo":
                dims: dict[str, Any] = {}
                shapes = []
                for spec in io.inputs:
                    axes = dynamic.get(spec.name, {})
                    shapes.append({axis: dims.setdefault(name, torch.export.Dim(_dim_name(name), min=1, max=4096))
                                   for axis, name in axes.items()} or None)
                torch.onnx.export(module, tuple(example), str(path), dynamo=True, dynamic_shapes=tuple(shapes),
                                  input_names=input_names, output_names=output_names, opset_version=opset,
                                  external_data=False, verbose=False)
            else:
                out_axes = {name: {0: "batch"} for name in output_names}
                with _stdout_silenced():  # torch's C++ prints the whole graph to stdout when it fails
                    torch.onnx.export(module, tuple(example), str(path), dynamo=False, input_names=input_names,
                                      output_names=output_names, opset_version=opset,
                                      dynamic_axes={**{k: v for k, v in dynamic.items() if v}, **out_axes})
        onnx.checker.check_model(str(path))
    except Exception as exc:
        path.unlink(missing_ok=True)
        first_line = str(exc).splitlines()[0][:300] if str(exc) else ""
        other = "dynamo" if exporter == "torchscript" else "torchscript"
        raise InputError(f"model: exporting the torch model to ONNX ({exporter} exporter, opset {opset}) failed: "
                         f"{type(exc).__name__}: {first_line}",
                         hint=f"try model.exporter: {other}, or another model.opset") from exc


@contextlib.contextmanager
def _stdout_silenced() -> Iterator[None]:
    """File descriptor 1 points at /dev/null inside the block (C++ code writes there, not to sys.stdout).

    torch 2.13's TorchScript exporter turns its ONNX log on for every export (``setup_onnx_logging`` tests
    the function ``_jit_is_onnx_log_enabled`` instead of calling it), so a failed export dumps its IR
    graph to stdout, in the middle of edgecraft's output; the error itself is still raised."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _dim_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() else "_" for c in name)
    return cleaned if cleaned[:1].isalpha() else f"d_{cleaned}"
