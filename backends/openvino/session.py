"""Compile an OpenVINO IR on the CPU plugin and run it as an edgecraft :class:`Session`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from edgecraft.backend import Session
from edgecraft.backends.openvino.options import (
    IR_BIN,
    TARGET,
    OpenVinoCpuOptions,
    error_text,
    require_openvino,
)
from edgecraft.errors import InputError, RuntimeFailure


def compile_config(options: OpenVinoCpuOptions, threads: int) -> dict[str, Any]:
    """The CPU plugin properties for ``options`` (plain string keys: stable across OpenVINO releases)."""
    config: dict[str, Any] = {
        "PERFORMANCE_HINT": "LATENCY" if options.performance_hint == "latency" else "THROUGHPUT",
        "INFERENCE_PRECISION_HINT": options.inference_precision,
        "INFERENCE_NUM_THREADS": options.threads or threads,
        "ENABLE_CPU_PINNING": options.cpu_pinning,
    }
    if options.streams is not None:
        config["NUM_STREAMS"] = options.streams
    elif options.performance_hint == "latency":
        config["NUM_STREAMS"] = 1
    return config


def read_ir(xml: Path) -> Any:
    """Read an IR pair, turning a missing or corrupt file into an ``InputError`` (exit code 2)."""
    ov = require_openvino()
    if not xml.is_file() or not xml.with_suffix(".bin").is_file():
        missing = xml if not xml.is_file() else xml.with_suffix(".bin")
        raise InputError(f"OpenVINO artifact is incomplete: {missing} does not exist",
                         hint=f"rebuild the artifact (an IR is {xml.name} + {IR_BIN})")
    try:
        return ov.Core().read_model(str(xml))
    except Exception as exc:
        raise InputError(f"OpenVINO could not read the IR {xml}: {type(exc).__name__}: {error_text(exc)}",
                         hint="the artifact is corrupt or was written by another OpenVINO version; "
                         "delete it (or the cache entry) and rebuild") from exc


def compile_ir(source: Path | Any, options: OpenVinoCpuOptions, threads: int) -> OpenVinoSession:
    """Compile an IR file (or an in-memory ``openvino.Model``) on CPU with the target's options.

    With ``static_shapes`` (the default) a model with symbolic input axes is compiled on its first call, for that
    call's shapes (see :class:`OpenVinoSession`); a model whose inputs are all static is compiled here, once.
    """
    model = read_ir(source) if isinstance(source, Path) else source
    config = compile_config(options, threads)
    where = str(source) if isinstance(source, Path) else "the model"
    dynamic = any(port.get_partial_shape().is_dynamic for port in model.inputs)
    if options.static_shapes and dynamic:
        return OpenVinoSession(None, options, config, model=model, where=where)
    return OpenVinoSession(_compile(model, config, where), options, config, where=where)


def _compile(model: Any, config: dict[str, Any], where: str) -> Any:
    ov = require_openvino()
    try:
        return ov.Core().compile_model(model, "CPU", config)
    except Exception as exc:
        raise InputError(f"OpenVINO could not compile {where} for CPU: "
                         f"{type(exc).__name__}: {error_text(exc)}",
                         hint="the IR is corrupt or uses operations the CPU plugin does not support") from exc


def _reshaped(model: Any, names: list[str], shapes: tuple[tuple[int, ...], ...]) -> tuple[Any, str | None]:
    """A copy of ``model`` with these static input shapes, or (``model``, why not) when it cannot be reshaped."""
    ov = require_openvino()
    static = model.clone()
    try:
        static.reshape({name: ov.PartialShape(list(shape)) for name, shape in zip(names, shapes, strict=True)})
    except Exception as exc:
        return model, f"kept symbolic axes: reshape to {[list(s) for s in shapes]} failed ({error_text(exc)[:200]})"
    return static, None


def effective_precision(requested: str, reported: Any, bf16_cpu: bool | None = None) -> tuple[str, str | None]:
    """The precision a compiled model runs in, and a note when it is not the one the plan asked for.

    ``reported`` is the compiled model's INFERENCE_PRECISION_HINT (an element type name such as "f32" or
    "bf16", or None when unreadable). OpenVINO honours bf16 only on CPUs with AVX-512 BF16 or AMX and
    silently keeps f32 elsewhere: that is reported as f32, with the reason.
    """
    from edgecraft.cpu import has_bf16

    bf16_cpu = has_bf16() if bf16_cpu is None else bf16_cpu
    if reported is not None:
        actual = str(reported).lower()
    else:
        actual = "f32" if requested == "bf16" and not bf16_cpu else requested
    if actual == requested:
        return actual, None
    if requested == "bf16" and not bf16_cpu:
        return actual, ("inference_precision bf16 requested, but this CPU has no bf16 compute (no avx512_bf16 "
                        f"or amx_bf16 flag): OpenVINO runs the model in {actual}")
    return actual, f"inference_precision {requested} requested, but OpenVINO compiled the model in {actual}"


#: Runtime layer types that multiply-accumulate (OpenVINO's CPU plugin names).
COMPUTE_LAYERS = frozenset({"Convolution", "GroupConvolution", "FullyConnected", "MatMul", "Deconvolution",
                            "BinaryConvolution"})


class OpenVinoSession(Session):
    """One compiled model and one infer request (batch-1 latency is a single request's job).

    Given the uncompiled ``model`` (its inputs have symbolic axes and ``static_shapes`` is on), the session compiles
    it for each distinct set of input shapes it is called with, on first use, and keeps the last few: OpenVINO's CPU
    plugin picks faster kernels for static shapes, and a run calls a model with one or two shapes (the latency
    batch, the evaluation batch and its remainder).
    """

    #: Compiled shape sets kept at once (each holds its own compiled kernels and buffers).
    KEEP = 3

    def __init__(self, compiled: Any, options: OpenVinoCpuOptions, config: dict[str, Any], *, model: Any = None,
                 where: str = "the model") -> None:
        self._model = model
        self._where = where
        self._options = options
        self._config = config
        self._by_shape: dict[tuple[tuple[int, ...], ...], tuple[Any, Any]] = {}
        self._shape_note: str | None = None
        self._compiled = compiled
        self._request = compiled.create_infer_request() if compiled is not None else None
        ports = compiled.inputs if compiled is not None else model.inputs
        self._inputs = [port.get_any_name() for port in ports]
        self._n_outputs = len(compiled.outputs if compiled is not None else model.outputs)

    def _request_for(self, feeds: Mapping[str, np.ndarray]) -> Any:
        if self._model is None:
            return self._request
        key = tuple(tuple(int(d) for d in np.shape(feeds[name])) for name in self._inputs)
        entry = self._by_shape.pop(key, None)
        if entry is None:
            static, note = _reshaped(self._model, self._inputs, key)
            self._shape_note = note
            compiled = _compile(static, self._config, self._where)
            entry = (compiled, compiled.create_infer_request())
            while len(self._by_shape) >= self.KEEP:
                self._by_shape.pop(next(iter(self._by_shape)))
        self._by_shape[key] = entry  # most recently used last
        self._compiled, self._request = entry
        return self._request

    @property
    def input_names(self) -> list[str]:
        return list(self._inputs)

    @property
    def compiled(self) -> Any:
        """The ``openvino.CompiledModel`` (its runtime model says what executes)."""
        return self._compiled

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        unknown = sorted(set(feeds) - set(self._inputs))
        if unknown:
            raise InputError(f"openvino-cpu: unknown input(s) {unknown}; the model takes {self._inputs}")
        if self._model is not None:
            missing = sorted(set(self._inputs) - set(feeds))
            if missing:
                raise InputError(f"openvino-cpu: missing input(s) {missing}; the model takes {self._inputs}")
        request = self._request_for(feeds)
        try:
            results = request.infer(dict(feeds))
        except Exception as exc:
            raise RuntimeFailure(
                f"OpenVINO inference failed: {type(exc).__name__}: {error_text(exc)}") from exc
        return [np.asarray(results[i]) for i in range(self._n_outputs)]

    def describe(self) -> dict[str, Any]:
        """What actually runs: read back from the compiled model, not echoed from the request."""
        import openvino as ov

        if self._compiled is None and self._model is not None:  # not called yet: describe the model as declared
            self._compiled = _compile(self._model, self._config, self._where)

        def prop(name: str) -> Any:
            try:
                value = self._compiled.get_property(name)
            except Exception:
                return None
            if isinstance(value, int | float | bool):
                return value
            # Element types (ov.Type) print as "<Type: 'float32'>"; their type name is "f32"/"bf16".
            return value.get_type_name() if hasattr(value, "get_type_name") else str(value)

        precision = prop("INFERENCE_PRECISION_HINT")
        try:
            device = ov.Core().get_property("CPU", "FULL_DEVICE_NAME")
        except Exception:
            device = "CPU"
        actual, note = effective_precision(self._options.inference_precision, precision)
        return {
            "target": TARGET,
            "runtime": f"openvino {ov.__version__.split('-')[0]}",
            "device": device,
            "precision": actual,
            **({"precision_note": note} if note else {}),
            "performance_hint": str(prop("PERFORMANCE_HINT") or self._config["PERFORMANCE_HINT"]).lower(),
            "streams": prop("NUM_STREAMS"),
            "threads": prop("INFERENCE_NUM_THREADS"),
            "cpu_pinning": prop("ENABLE_CPU_PINNING"),
            "shapes": self._shapes(),
            "int8": self._has_int8(),
            "int8_layers": self._int8_layers(),
            "emulated": False,
        }

    def _shapes(self) -> str:
        """How the model was compiled: static per call shape (and for which), or once with its declared shapes."""
        if self._model is None:
            return "as declared by the artifact (compiled once)"
        if self._shape_note:
            return self._shape_note
        shapes = "; ".join(", ".join(str(list(s)) for s in key) for key in self._by_shape) or "none yet"
        return f"static, compiled per call shape (compiled for: {shapes})"

    def _has_int8(self) -> bool:
        """True when the runtime graph executes int8 kernels (NNCF's FakeQuantize folded into u8/i8)."""
        try:
            runtime = self._compiled.get_runtime_model()
        except Exception:
            return False
        for op in runtime.get_ordered_ops():
            info = op.get_rt_info()
            if "runtimePrecision" in info and info["runtimePrecision"].astype(str).lower() in {"u8", "i8"}:
                return True
        return False

    def _int8_layers(self) -> dict[str, Any]:
        """Per compute layer of the runtime graph, the precision it executes in (u8/i8: integer kernels)."""
        try:
            ops = self._compiled.get_runtime_model().get_ordered_ops()
        except Exception as exc:
            return {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        int8: dict[str, int] = {}
        floats: dict[str, int] = {}
        float_layers: list[str] = []
        for op in ops:
            info = op.get_rt_info()
            layer = info["layerType"].astype(str) if "layerType" in info else ""
            if layer not in COMPUTE_LAYERS:
                continue
            precision = info["runtimePrecision"].astype(str).lower() if "runtimePrecision" in info else "?"
            bucket = int8 if precision in {"u8", "i8"} else floats
            bucket[layer] = bucket.get(layer, 0) + 1
            if bucket is floats:
                float_layers.append(f"{op.get_friendly_name()} ({precision})")
        return {"int8": int8, "float": floats, "float_layers": float_layers[:20], "all_int8": bool(int8) and not floats}

    def close(self) -> None:
        self._request = None
        self._compiled = None
        self._by_shape.clear()
        self._model = None
