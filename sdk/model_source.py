"""Turn the plan's model source into a model handle, fingerprint it, and export torch models to ONNX."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from edgecraft.errors import InputError
from edgecraft.loading import file_sha256, load_callable
from edgecraft.models import InputSpec, OnnxModel, TorchModel
from edgecraft.plan import OnnxModelSource, TorchModelSource
from edgecraft.user_code import call_user_code

if TYPE_CHECKING:
    import onnx


def _check_onnx_file(path: Path, *, where: str) -> onnx.ModelProto:
    import onnx

    if not path.is_file():
        raise InputError(f"{where}: model file {path} does not exist", hint="paths are relative to the plan file")
    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
    except Exception as exc:
        raise InputError(f"{where}: {path} is not a valid ONNX model: {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
    return proto


def onnx_input_spec(proto: onnx.ModelProto, *, where: str) -> InputSpec:
    """The first graph input as an InputSpec; symbolic dimensions (batch) become 1."""
    initializers = {i.name for i in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in initializers]
    if not inputs:
        raise InputError(f"{where}: the ONNX model has no inputs")
    if len(inputs) > 1:
        raise InputError(f"{where}: the ONNX model has {len(inputs)} inputs ({[i.name for i in inputs]}); "
                         "edgecraft currently feeds single-input models")
    tensor_type = inputs[0].type.tensor_type
    if tensor_type.elem_type != 1:  # onnx.TensorProto.FLOAT
        raise InputError(f"{where}: input {inputs[0].name!r} must be float32 (elem_type {tensor_type.elem_type})")
    dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in tensor_type.shape.dim)
    return InputSpec(inputs[0].name, dims)


class ModelSourceLoader:
    """Loads the plan's model once, hands out fresh copies, and fingerprints it for the cache key."""

    def __init__(self, source: OnnxModelSource | TorchModelSource, base_dir: Path) -> None:
        self.source = source
        self.base_dir = base_dir
        self._torch: TorchModel | None = None
        self._fingerprint: str | None = None
        self._onnx_spec: InputSpec | None = None

    @property
    def kind(self) -> str:
        return self.source.kind

    def _onnx_path(self) -> Path:
        assert isinstance(self.source, OnnxModelSource)
        return (self.base_dir / self.source.path).resolve()

    def _load_torch(self) -> TorchModel:
        import torch

        source = self.source
        assert isinstance(source, TorchModelSource)
        if self._torch is None:
            factory = load_callable(source.factory, self.base_dir, field="model.factory")
            module = call_user_code(factory, what=f"model.factory: {source.factory}")
            if not isinstance(module, torch.nn.Module):
                raise InputError(f"model.factory: {source.factory} returned {type(module).__name__}, "
                                 "expected a torch.nn.Module")
            module.eval()
            spec = InputSpec(source.input_name, tuple(source.input_shape))
            try:
                with torch.no_grad():
                    module(torch.zeros(spec.shape))
            except Exception as exc:
                raise InputError(f"model.input_shape: the model does not accept an input of shape "
                                 f"{list(spec.shape)}: {type(exc).__name__}: {exc}") from exc
            self._torch = TorchModel(module, spec, source.output_name)
        return self._torch

    def input_spec(self) -> InputSpec:
        if isinstance(self.source, TorchModelSource):
            return InputSpec(self.source.input_name, tuple(self.source.input_shape))
        if self._onnx_spec is None:
            proto = _check_onnx_file(self._onnx_path(), where="model.path")
            self._onnx_spec = onnx_input_spec(proto, where="model.path")
        return self._onnx_spec

    def fresh(self) -> TorchModel | OnnxModel:
        """A copy the steps may mutate (the loaded original is kept intact as the teacher)."""
        if isinstance(self.source, OnnxModelSource):
            return OnnxModel(self._onnx_path(), self.input_spec())
        original = self._load_torch()
        return TorchModel(copy.deepcopy(original.module), original.input_spec, original.output_name)

    def original_torch(self) -> TorchModel:
        """The plan's torch model as loaded (read-only by convention)."""
        return self._load_torch()

    def original_copy(self) -> TorchModel:
        """A deep copy of the plan's torch model, safe to hand to plugin code."""
        source = self._load_torch()
        return TorchModel(copy.deepcopy(source.module), source.input_spec, source.output_name)

    def fingerprint(self) -> str:
        """Hash of the model's content: the ONNX bytes, or the torch module's structure and weights."""
        if self._fingerprint is None:
            if isinstance(self.source, OnnxModelSource):
                self.input_spec()  # validates the file
                self._fingerprint = file_sha256(self._onnx_path())
            else:
                module = self._load_torch().module
                digest = hashlib.sha256(repr(module).encode())
                for name, tensor in sorted(module.state_dict().items()):
                    digest.update(name.encode())
                    digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
                self._fingerprint = digest.hexdigest()
        return self._fingerprint


def export_onnx(model: TorchModel, path: Path, *, opset: int = 18, exporter: str = "dynamo") -> OnnxModel:
    """Export with a dynamic batch axis so evaluation can batch while latency runs at batch 1."""
    import logging
    import warnings

    import onnx
    import torch

    module = model.module.eval()
    example = torch.zeros(model.input_spec.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = {"input_names": [model.input_spec.name], "output_names": [model.output_name], "opset_version": opset}
    # The exporter logs a warning per missing optional op library (torchvision) and deprecations of
    # torch internals: noise for users, nothing they can act on.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if exporter == "dynamo":
                batch = torch.export.Dim("batch", min=1, max=4096)
                torch.onnx.export(module, (example,), str(path), dynamo=True, dynamic_shapes=({0: batch},),
                                  external_data=False, verbose=False, **names)
            else:
                torch.onnx.export(module, (example,), str(path), dynamo=False, **names,
                                  dynamic_axes={model.input_spec.name: {0: "batch"}, model.output_name: {0: "batch"}})
    except Exception as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        raise InputError(f"model: exporting the torch model to ONNX ({exporter} exporter, opset {opset}) failed: "
                         f"{type(exc).__name__}: {first_line}",
                         hint="try model.exporter: torchscript, or another model.opset") from exc
    onnx.checker.check_model(str(path))
    return OnnxModel(path, model.input_spec, list(model.lineage))
