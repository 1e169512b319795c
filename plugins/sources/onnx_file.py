"""``model: {kind: onnx, path: m.onnx, inputs: {...}}``: an ONNX file exported by any tool."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from edgecraft.errors import resolve_input_path
from edgecraft.model_source import ModelSourceKind, SourceContext, check_onnx_file
from edgecraft.modelio import ModelIO, io_from_onnx
from edgecraft.models import OnnxModel, Stage
from edgecraft.plan import SourceParams
from pydantic import Field


class OnnxSourceParams(SourceParams):
    """An ONNX file, relative to the plan file. Only graph-level steps (e.g. quantization) apply."""

    kind: Literal["onnx"] = "onnx"
    path: str = Field(description="Path to the .onnx file, relative to the plan file.")


class OnnxFileSource(ModelSourceKind[OnnxSourceParams]):
    kind = "onnx"
    params_model = OnnxSourceParams
    summary = "An ONNX file (any exporter, any opset >= 7); its inputs, dtypes and symbolic dims are read from it."
    stage = Stage.ONNX

    def _path(self, params: OnnxSourceParams, ctx: SourceContext) -> Path:
        return resolve_input_path(ctx.base_dir / params.path, field="model.path")

    def io(self, params: OnnxSourceParams, ctx: SourceContext) -> ModelIO:
        path = self._path(params, ctx)
        key = f"onnx-io:{path}"
        cached = ctx.extras.get(key)
        if not isinstance(cached, ModelIO):
            cached = io_from_onnx(check_onnx_file(path, where="model.path"), where="model.path")
            ctx.extras[key] = cached
        return cached

    def load(self, params: OnnxSourceParams, io: ModelIO, ctx: SourceContext) -> OnnxModel:
        return OnnxModel(self._path(params, ctx), io)
