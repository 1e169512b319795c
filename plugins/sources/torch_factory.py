"""``model: {kind: torch, factory: pkg.mod:fn, inputs: {...}}``: a torch module built by user code."""

from __future__ import annotations

from typing import Any, Literal

from edgecraft.errors import InputError
from edgecraft.loading import load_callable
from edgecraft.model_source import ModelSourceKind, SourceContext
from edgecraft.modelio import ModelIO, TensorSpec
from edgecraft.models import Stage, TorchModel
from edgecraft.plan import SourceParams
from edgecraft.user_code import call_user_code
from pydantic import Field, field_validator, model_validator


class TorchSourceParams(SourceParams):
    """A torch module built by a factory; edgecraft exports it to ONNX itself.

    ``inputs`` declares every input in call order (``module(*inputs)``): shape (the batch axis as 1
    or a name), dtype (default float32) and batch_axis (default 0). ``input_shape`` is the
    shorthand for one float input named ``input_name``.
    """

    kind: Literal["torch"] = "torch"
    factory: str = Field(
        description="'package.module:function' or 'file.py:function' (relative to the plan) returning an "
        "nn.Module with its weights loaded.")
    input_shape: list[int] | None = Field(None, min_length=1, description="Shorthand for one float32 input: its "
                                          "shape with batch 1, e.g. [1, 3, 224, 224].")
    input_name: str = "input"
    output_name: str = "output"
    outputs: list[str] | None = Field(None, min_length=1, description="Names of the outputs forward returns, in "
                                      "order (default: [output_name]).")
    opset: int = Field(18, ge=13, le=23, description="ONNX opset for the export.")
    exporter: Literal["auto", "dynamo", "torchscript"] = Field(
        "dynamo", description="torch.onnx exporter: 'dynamo' (torch.export based, maintained), the legacy "
        "'torchscript' one, or 'auto' (TorchScript, then dynamo when TorchScript fails).")

    @field_validator("factory")
    @classmethod
    def _factory_has_colon(cls, value: str) -> str:
        if ":" not in value or not all(value.split(":", 1)):
            raise ValueError("expected 'package.module:function' or 'file.py:function'")
        return value

    @field_validator("input_shape")
    @classmethod
    def _positive_dims(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and any(d <= 0 for d in value):
            raise ValueError("every dimension must be a positive integer")
        return value

    @model_validator(mode="after")
    def _one_way_to_declare_inputs(self) -> TorchSourceParams:
        if (self.input_shape is None) == (not self.inputs):
            raise ValueError("declare the inputs either with input_shape (one float input) or with inputs "
                             "(name: {shape, dtype}), not both and not neither")
        if self.inputs and any(d.shape is None for d in self.inputs.values()):
            missing = [n for n, d in self.inputs.items() if d.shape is None]
            raise ValueError(f"inputs {missing}: a torch model's inputs need a shape")
        return self


class TorchFactorySource(ModelSourceKind[TorchSourceParams]):
    kind = "torch"
    params_model = TorchSourceParams
    summary = "A torch nn.Module from 'pkg.mod:fn' or 'file.py:fn'; torch-level steps (pruning, distillation) apply."
    stage = Stage.TORCH

    def io(self, params: TorchSourceParams, ctx: SourceContext) -> ModelIO:
        specs: list[TensorSpec] = []
        if params.input_shape is not None:
            shape: tuple[int | str, ...] = ("batch", *params.input_shape[1:])
            specs.append(TensorSpec(params.input_name, "float32", shape, 0))
        for name, decl in params.inputs.items():
            assert decl.shape is not None
            axis = decl.batch_axis if "batch_axis" in decl.model_fields_set else (0 if decl.shape else None)
            dims = [("batch" if i == axis else d) for i, d in enumerate(decl.shape)]
            specs.append(TensorSpec(name, decl.dtype or "float32", tuple(dims), axis))
        names = params.outputs or [params.output_name]
        outputs = tuple(TensorSpec(n, "float32", ("batch",), 0) for n in names)
        return ModelIO(tuple(specs), outputs)

    def load(self, params: TorchSourceParams, io: ModelIO, ctx: SourceContext) -> TorchModel:
        import torch

        factory = load_callable(params.factory, ctx.base_dir, field="model.factory")
        module = call_user_code(factory, what=f"model.factory: {params.factory}")
        if not isinstance(module, torch.nn.Module):
            raise InputError(f"model.factory: {params.factory} returned {type(module).__name__}, "
                             "expected a torch.nn.Module")
        module.eval()
        return TorchModel(module, io)

    def export_options(self, params: TorchSourceParams) -> dict[str, Any]:
        return {"opset": params.opset, "exporter": params.exporter}
