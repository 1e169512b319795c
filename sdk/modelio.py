"""The typed I/O of a model: every input and output with a name, a dtype and a shape.

Models from the wild have several inputs (token ids and masks, images and sizes, audio and
recurrent state), integer inputs, 0-d scalars and symbolic dimensions (``[batch, sequence]``).
Every model handle carries a :class:`ModelIO`, read from the ONNX file or declared by the model
source, then completed by the plan (``model.inputs``). Olive's ``IoConfig`` is the nearest peer;
the difference here is the *batch axis*: each input knows which of its axes carries samples (the
first, another one such as recurrent state ``[2, batch, 128]``, or none for a scalar), so data can
be fed in batches and outputs gathered per sample, whatever the layout.

A dimension is an ``int`` (fixed) or a ``str`` (symbolic). Once the plan is compiled, the only
symbolic dimension an input may keep is its batch axis: everything else must be known, because
the baseline and the candidate are timed on the same concrete shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from edgecraft.errors import CompileError, InputError

if TYPE_CHECKING:
    import onnx

Dim = int | str

#: ONNX TensorProto element types edgecraft feeds, by their numpy names.
ONNX_DTYPES: dict[int, str] = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64",
                               9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 16: "bfloat16"}
DTYPES = frozenset(ONNX_DTYPES.values())


def dtype_kind(dtype: str) -> str:
    """'float', 'int' or 'bool': feeds may be cast within a kind, never across (ids stay ids)."""
    if dtype == "bool":
        return "bool"
    return "float" if dtype.startswith(("float", "bfloat")) else "int"


@dataclass(frozen=True)
class TensorSpec:
    """One input or output. ``batch_axis`` is the axis that carries samples, or None (a scalar, a fixed state)."""

    name: str
    dtype: str
    shape: tuple[Dim, ...]
    batch_axis: int | None = None

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_float(self) -> bool:
        return dtype_kind(self.dtype) == "float"

    def free_dims(self) -> list[tuple[int, str]]:
        """Symbolic dimensions other than the batch axis (each must be fixed before running)."""
        return [(i, d) for i, d in enumerate(self.shape) if isinstance(d, str) and i != self.batch_axis]

    @property
    def max_batch(self) -> int | None:
        """None when any batch size fits; else the one batch size the model accepts (1 for no batch axis)."""
        if self.batch_axis is None:
            return 1
        dim = self.shape[self.batch_axis]
        return None if isinstance(dim, str) else dim

    def concrete(self, batch: int = 1) -> tuple[int, ...]:
        """The shape with the batch axis set to ``batch``; raises if another dimension is still symbolic."""
        out = []
        for i, d in enumerate(self.shape):
            if i == self.batch_axis:
                out.append(batch)
            elif isinstance(d, str):
                raise InputError(f"input {self.name!r}: dimension {i} ({d!r}) is symbolic",
                                 hint=f"fix it in the plan: model.inputs.{self.name}.shape")
            else:
                out.append(d)
        return tuple(out)

    def sample_shape(self) -> tuple[int, ...]:
        """The shape of one sample: the concrete shape without the batch axis."""
        full = list(self.concrete(1))
        if self.batch_axis is not None:
            del full[self.batch_axis]
        return tuple(full)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape), "batch_axis": self.batch_axis}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TensorSpec:
        return cls(str(data["name"]), str(data["dtype"]), tuple(data["shape"]), data.get("batch_axis"))

    def describe(self) -> str:
        dims = ", ".join(("*" if i == self.batch_axis else "") + str(d) for i, d in enumerate(self.shape))
        return f"{self.name}: {self.dtype}[{dims}]"


@dataclass(frozen=True)
class ModelIO:
    """A model's inputs (in call order) and outputs (in return order)."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...] = field(default_factory=tuple)

    @classmethod
    def single(cls, name: str, shape: tuple[int, ...] | list[int], *, dtype: str = "float32",
               output: str = "output") -> ModelIO:
        """One input whose leading axis is a symbolic batch (``shape`` given with batch 1), one output."""
        return cls((TensorSpec(name, dtype, ("batch", *tuple(shape)[1:]), 0),),
                   (TensorSpec(output, "float32", ("batch",), 0),))

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def input(self, name: str) -> TensorSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise InputError(f"the model has no input {name!r}; its inputs: {self.input_names}")

    def output_index(self, name: str | None, *, field: str = "evaluation.output") -> int:
        """Position of output ``name`` (None: the first output)."""
        if name is None:
            return 0
        if name not in self.output_names:
            raise InputError(f"{field} = {name!r}: the model has no such output; its outputs: {self.output_names}")
        return self.output_names.index(name)

    @property
    def max_batch(self) -> int | None:
        """The largest batch every input accepts at once (None: any)."""
        limits = [t.max_batch for t in self.inputs if t.max_batch is not None]
        return min(limits) if limits else None

    def check_concrete(self, *, where: str = "model.inputs") -> None:
        """Compile-time check: no symbolic dimension but a batch axis may remain."""
        for spec in self.inputs:
            free = spec.free_dims()
            if free:
                axis, name = free[0]
                example = [("batch" if i == spec.batch_axis else (d if isinstance(d, int) else "N"))
                           for i, d in enumerate(spec.shape)]
                raise CompileError(
                    f"{where}: input {spec.name!r} has symbolic dimension {axis} ({name!r}) that is not its batch "
                    f"axis; edgecraft measures on concrete shapes",
                    hint=f"fix it in the plan, e.g. model: {{inputs: {{{spec.name}: {{shape: {example}}}}}}} "
                         f"(a string keeps the batch axis symbolic), or declare batch_axis for it")

    def to_json(self) -> dict[str, Any]:
        return {"inputs": [t.to_json() for t in self.inputs], "outputs": [t.to_json() for t in self.outputs]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelIO:
        return cls(tuple(TensorSpec.from_json(t) for t in data.get("inputs", [])),
                   tuple(TensorSpec.from_json(t) for t in data.get("outputs", [])))

    def describe(self) -> str:
        return "inputs " + "; ".join(t.describe() for t in self.inputs) + (
            " | outputs " + "; ".join(t.describe() for t in self.outputs) if self.outputs else "")


# ---------------------------------------------------------------- reading ONNX
def _onnx_dims(value_info: Any) -> tuple[Dim, ...]:
    dims: list[Dim] = []
    for i, d in enumerate(value_info.type.tensor_type.shape.dim):
        if d.HasField("dim_value") and d.dim_value > 0:
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param:
            dims.append(str(d.dim_param))
        else:
            dims.append(f"?{i}")  # unnamed (or -1): symbolic, and never equal to another input's
    return tuple(dims)


def _guess_batch_axis(shape: tuple[Dim, ...], batch_symbol: str | None) -> int | None:
    """The batch axis of a tensor: the axis carrying the model's batch symbol, else a symbolic or 1 leading axis."""
    if batch_symbol is not None and batch_symbol in shape and not batch_symbol.startswith("?"):
        return shape.index(batch_symbol)
    if shape and (isinstance(shape[0], str) or shape[0] == 1):
        return 0
    return None


def batch_symbol_of(shapes: list[tuple[Dim, ...]]) -> str | None:
    """The name of the batch dimension: the first input's leading symbolic dimension."""
    for shape in shapes:
        if shape and isinstance(shape[0], str):
            return shape[0]
    return None


def io_from_onnx(proto: onnx.ModelProto, *, where: str = "model.path") -> ModelIO:
    """Inputs (initializers excluded) and outputs of an ONNX graph, with dtypes and symbolic dims kept."""
    initializers = {i.name for i in proto.graph.initializer}
    raw_inputs = [i for i in proto.graph.input if i.name not in initializers]
    if not raw_inputs:
        raise InputError(f"{where}: the ONNX model has no inputs")
    in_shapes = [_onnx_dims(i) for i in raw_inputs]
    symbol = batch_symbol_of(in_shapes)

    def spec(value_info: Any, shape: tuple[Dim, ...]) -> TensorSpec:
        if not value_info.type.HasField("tensor_type"):
            raise InputError(f"{where}: {value_info.name!r} is not a tensor (sequences and maps are not supported)")
        elem = value_info.type.tensor_type.elem_type
        if elem not in ONNX_DTYPES:
            raise InputError(f"{where}: {value_info.name!r} has ONNX element type {elem}, which edgecraft cannot "
                             f"feed (supported: {sorted(DTYPES)})")
        return TensorSpec(value_info.name, ONNX_DTYPES[elem], shape, _guess_batch_axis(shape, symbol))

    inputs = tuple(spec(i, s) for i, s in zip(raw_inputs, in_shapes, strict=True))
    outputs = tuple(spec(o, _onnx_dims(o)) for o in proto.graph.output)
    return ModelIO(inputs, outputs)


# ---------------------------------------------------------------- the plan's overrides
def apply_overrides(io: ModelIO, overrides: Mapping[str, Any], *, where: str = "model.inputs") -> ModelIO:
    """Complete ``io`` with the plan's ``inputs:`` entries (shape, dtype, batch_axis; each optional).

    ``overrides`` maps an input name to an object with optional ``shape``, ``dtype`` and
    ``batch_axis`` attributes (the plan's :class:`~edgecraft.plan.InputDecl`).
    """
    by_name = {t.name: t for t in io.inputs}
    unknown = sorted(set(overrides) - set(by_name))
    if unknown:
        raise InputError(f"{where}: {unknown} {'is not an input' if len(unknown) == 1 else 'are not inputs'} of the "
                         f"model; its inputs: {io.input_names}")
    changed = []
    for spec in io.inputs:
        decl = overrides.get(spec.name)
        if decl is None:
            changed.append(spec)
            continue
        shape = spec.shape
        batch_axis = spec.batch_axis
        fields_set = getattr(decl, "model_fields_set", set())
        if getattr(decl, "shape", None) is not None:
            new = tuple(decl.shape)
            if len(new) != len(spec.shape):
                raise InputError(f"{where}.{spec.name}.shape = {list(new)}: the model's input has rank {len(shape)} "
                                 f"({list(shape)})")
            for i, (old, value) in enumerate(zip(shape, new, strict=True)):
                if isinstance(old, int) and isinstance(value, int) and old != value:
                    raise InputError(f"{where}.{spec.name}.shape[{i}] = {value}: the model fixes this dimension "
                                     f"to {old}")
            shape = tuple(value if isinstance(value, int) else (old if isinstance(old, str) else value)
                          for old, value in zip(spec.shape, new, strict=True))
            if "batch_axis" not in fields_set:
                symbolic = [i for i, d in enumerate(shape) if isinstance(d, str)]
                batch_axis = symbolic[0] if symbolic else (spec.batch_axis if spec.batch_axis is not None
                                                           and shape[spec.batch_axis] == 1 else None)
        if "batch_axis" in fields_set:
            batch_axis = decl.batch_axis
            if batch_axis is not None and not 0 <= batch_axis < len(shape):
                raise InputError(f"{where}.{spec.name}.batch_axis = {batch_axis}: the input has rank {len(shape)}")
        dtype = spec.dtype
        if getattr(decl, "dtype", None) is not None:
            dtype = decl.dtype
        changed.append(replace(spec, shape=shape, dtype=dtype, batch_axis=batch_axis))
    return ModelIO(tuple(changed), io.outputs)


# ---------------------------------------------------------------- synthetic feeds
def synthetic_feeds(io: ModelIO, batch: int, seed: int) -> dict[str, np.ndarray]:
    """Seeded stand-in inputs when the plan has no data: noise for floats, ones for integers (valid ids and masks)."""
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for spec in io.inputs:
        shape = spec.concrete(batch if spec.batch_axis is not None else 1)
        if spec.is_float:
            feeds[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
        elif spec.dtype == "bool":
            feeds[spec.name] = np.ones(shape, dtype=bool)
        else:
            feeds[spec.name] = np.ones(shape, dtype=spec.dtype)
    return feeds
