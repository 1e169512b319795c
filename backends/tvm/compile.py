"""ONNX → TVM Relax → compiled library: pure functions on files, used by the backend's import/save.

TVM 0.27 takes targets as JSON dicts (the old ``"llvm -mtriple=..."`` strings raise). The aarch64
library is linked by Debian's cross compiler (``tvm.support.cc.cross_compiler``; weights are embedded
in the .so), then checked to really be an aarch64 ELF.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from edgecraft.backends.tvm.elf import elf_machine
from edgecraft.backends.tvm.options import AArch64Options, HostOptions
from edgecraft.backends.tvm.toolchain import CROSS_CXX
from edgecraft.errors import InputError, RuntimeFailure

AARCH64_TRIPLE = "aarch64-linux-gnu"
LIBRARY = "model.so"
META = "tvm_model.json"
PROBE = "probe.npz"

#: ONNX tensor element types edgecraft feeds (onnx.TensorProto enum -> numpy dtype name).
_ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 10: "float16", 11: "float64"}


def target_dict(target: str, options: AArch64Options | HostOptions) -> dict[str, Any]:
    """The TVM target (as the JSON dict TVM 0.27 wants) for a target name and its options."""
    if target == "tvm-aarch64":
        assert isinstance(options, AArch64Options)
        mattr = ["+neon", *[f for f in options.mattr if f != "+neon"]]
        spec_a: dict[str, Any] = {"kind": "llvm", "mtriple": AARCH64_TRIPLE, "mcpu": options.cpu, "mattr": mattr}
        if options.tuning is not None:  # MetaSchedule sizes parallel schedules with the board's cores
            spec_a["num-cores"] = options.tuning.num_cores or 4
        return spec_a
    from tvm.target import codegen

    spec: dict[str, Any] = {"kind": "llvm", "mcpu": options.cpu or codegen.llvm_get_system_cpu()}
    if options.mattr:
        spec["mattr"] = list(options.mattr)
    if options.tuning is not None:
        import os

        spec["num-cores"] = options.tuning.num_cores or max(1, os.cpu_count() or 1)  # sizes parallel schedules
    return spec


def check_cpu(target: str, options: AArch64Options | HostOptions) -> None:
    """InputError if LLVM does not know ``options.cpu`` for the target's triple (it would silently use generic)."""
    if options.cpu is None:
        return
    import tvm_ffi
    from tvm.target import codegen

    triple = AARCH64_TRIPLE if target == "tvm-aarch64" else codegen.llvm_get_system_triple()
    if not tvm_ffi.get_global_func("target.llvm_is_valid_cpu")(options.cpu, triple):
        import tvm

        known = codegen.llvm_get_cpu_archlist(tvm.target.Target({"kind": "llvm", "mtriple": triple}))
        examples = [c for c in known if c.startswith(("cortex-a", "neoverse"))] or list(known)
        raise InputError(f"options.cpu = {options.cpu!r} is not a CPU LLVM knows for {triple}",
                         hint=f"use one of: {', '.join(sorted(examples)[:30])}, ...")


@dataclass
class TvmModel:
    """A Relax module imported from ONNX, with what a session needs to feed it."""

    mod: Any  # tvm.IRModule
    inputs: list[dict[str, Any]]  # name, shape (None for symbolic dims), dtype
    outputs: list[str]
    onnx_path: Path
    notes: list[str] = field(default_factory=list)


def import_onnx(onnx_path: Path) -> TvmModel:
    """Load an ONNX file with TVM's Relax frontend; unsupported operators are an InputError naming them."""
    import onnx
    from tvm.relax.frontend.onnx import from_onnx

    try:
        proto = onnx.load(str(onnx_path))
    except Exception as exc:
        raise InputError(f"cannot read the ONNX model {onnx_path}: {exc}") from exc
    initializers = {t.name for t in proto.graph.initializer}
    inputs = []
    for value in proto.graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
        inputs.append({"name": value.name, "shape": dims, "dtype": _ONNX_DTYPES.get(tensor.elem_type, "float32")})
    outputs = [o.name for o in proto.graph.output]
    try:
        mod = from_onnx(proto, keep_params_in_input=False)
    except Exception as exc:
        text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        ops = sorted({n.op_type for n in proto.graph.node})
        raise InputError(f"TVM's Relax ONNX frontend cannot import {onnx_path.name}: {text}",
                         hint="TVM imports float graphs and QDQ graphs (which it runs in fp32); it has no "
                         "QLinearConv/QGemm/ConvInteger. Operators in this model: " + ", ".join(ops)) from exc
    return TvmModel(mod=mod, inputs=inputs, outputs=outputs, onnx_path=onnx_path)


def build_library(model: TvmModel, target: str, options: AArch64Options | HostOptions, out_dir: Path,
                  *, tuning_db: Any = None) -> list[Path]:
    """Compile ``model`` for the target, export ``model.so`` (+ metadata and a host-checked probe)."""
    import tvm

    tvm_target = tvm.target.Target(target_dict(target, options))
    mod = model.mod
    if tuning_db is not None:
        mod = tuning_db(mod, tvm_target)
    try:
        executable = tvm.compile(mod, target=tvm_target)
    except Exception as exc:
        raise RuntimeFailure(f"tvm.compile failed for {target}: {type(exc).__name__}: {_first_line(exc)}") from exc
    library = out_dir / LIBRARY
    if target == "tvm-aarch64":
        fcompile = tvm.support.cc.cross_compiler(CROSS_CXX)
        executable.export_library(str(library), fcompile=fcompile)
        machine = elf_machine(library)
        if machine != "aarch64":
            raise RuntimeFailure(f"the cross-linked library is {machine or 'not an ELF file'}, not aarch64 "
                                 f"({library})")
    else:
        executable.export_library(str(library))
        machine = elf_machine(library)
    probe_in, probe_out = host_reference(model)
    np.savez(out_dir / PROBE, **{f"in{i}": a for i, a in enumerate(probe_in)},
             **{f"out{i}": a for i, a in enumerate(probe_out)})
    meta = {
        "format": "edgecraft.tvm/v1",
        "target": target,
        "tvm_target": json.loads(str(tvm_target)),
        "elf_machine": machine,
        "inputs": model.inputs,
        "outputs": model.outputs,
        "tuned": tuning_db is not None,
        "tvm": tvm.__version__,
        "notes": model.notes,
    }
    (out_dir / META).write_text(json.dumps(meta, indent=2, default=str) + "\n")
    return [library, out_dir / META, out_dir / PROBE]


def probe_inputs(inputs: list[dict[str, Any]], seed: int = 0) -> list[np.ndarray]:
    """Seeded inputs with symbolic dimensions set to 1 (the check every load runs on the device)."""
    rng = np.random.default_rng(seed)
    arrays = []
    for spec in inputs:
        shape = tuple(d if d else 1 for d in spec["shape"])
        dtype = np.dtype(spec["dtype"])
        if dtype.kind == "f":
            arrays.append(rng.standard_normal(shape).astype(dtype))
        else:
            arrays.append(rng.integers(0, 10, size=shape).astype(dtype))
    return arrays


def host_reference(model: TvmModel) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A probe input and ONNX Runtime's outputs for it on the host: the reference every device must match."""
    from edgecraft.torchkit.probe import ort_session  # the SDK's ONNX Runtime service (threads 0: ORT's defaults)

    feeds = probe_inputs(model.inputs)
    session = ort_session(model.onnx_path, threads=0, inter_op_threads=0)
    outputs = session.run(None, {spec["name"]: a for spec, a in zip(model.inputs, feeds, strict=True)})
    return feeds, [np.asarray(o) for o in outputs]


def _first_line(exc: BaseException) -> str:
    lines = [ln for ln in str(exc).splitlines() if ln.strip()]
    return lines[-1][:400] if lines else type(exc).__name__
