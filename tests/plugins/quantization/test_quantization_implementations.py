"""int8 per backend: implementations registered through edgecraft_register_implementations, looked up by the
strategy through its context; the strategy itself names no runtime."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from edgecraft.errors import CompileError, PluginError
from edgecraft.plan import RawPlan
from edgecraft.registry import build_registry
from edgecraft.runner import compile_all, prepare

HERE = Path(__file__).parent
STRATEGY = HERE.parents[2] / "plugins" / "quantization"

#: A third-party backend: ONNX Runtime under another name and target (its targets declare the int8 tags).
PLAIN_BACKEND = """
    from edgecraft.hookspecs import hookimpl
    from edgecraft.backend import TargetInfo
    from edgecraft.backends.onnxruntime.backend import OnnxRuntimeBackend, OrtCpuOptions

    class Plain(OnnxRuntimeBackend):
        name = "plainort"

        def targets(self):
            return [TargetInfo(name="plain-cpu", summary="ORT again", options_model=OrtCpuOptions,
                               capabilities=frozenset({"onnx.graph", "onnx.int8.qdq"}), native_format="onnx")]

    @hookimpl
    def edgecraft_register_backends(register):
        register(Plain)
"""


def _compile(target: str) -> Any:
    plan = RawPlan.model_validate({
        "model": {"kind": "torch", "factory": "qmodels.py:untrained", "input_shape": [1, 1, 8, 8]},
        "steps": [{"strategy": "quantization", "name": "int8", "params": {"calibration_dataset": "calib"}}],
        "targets": [target], "data": {"calib": {"kind": "digits", "split": "train", "image_size": 8,
                                                "max_samples": 32}}})
    return compile_all(prepare(plan, build_registry(), HERE), [target])[target]


def test_builtin_implementations_come_from_their_backends() -> None:
    registry = build_registry()
    for backend in ("onnxruntime", "openvino", "executorch"):
        provided = registry.implementations[f"quantization.int8@{backend}"]
        assert provided.provenance.plugin == backend and provided.provenance.distribution == "edgecraft"
        assert provided.obj.__module__ == f"edgecraft.backends.{backend}.quantize"
    tvm = registry.implementations_for("quantization.int8", "tvm")
    assert tvm.found is None and "TVM 0.27" in (tvm.refusal or "")
    assert tvm.elsewhere == {"onnxruntime": ("ort-aarch64", "ort-cpu"), "openvino": ("openvino-cpu",),
                             "executorch": ("executorch-aarch64", "executorch-xnnpack")}


def test_target_without_int8_names_its_backend_and_who_has_it(fake_dist: Any) -> None:
    fake_dist("fakeplug-plain", "fakeplug_plain", PLAIN_BACKEND)
    with pytest.raises(CompileError) as info:
        _compile("plain-cpu")
    text = f"{info.value} {info.value.hint}"
    assert "steps[0] (int8)" in text and "'plain-cpu'" in text and "'plainort' provides no implementation" in text
    assert "onnxruntime (ort-aarch64, ort-cpu)" in text and "openvino (openvino-cpu)" in text


def test_a_backend_reuses_onnx_runtime_int8_by_registering_it(fake_dist: Any) -> None:
    fake_dist("fakeplug-plain", "fakeplug_plain", PLAIN_BACKEND + """
    from edgecraft.backends.onnxruntime.quantize import OrtInt8

    class PlainInt8(OrtInt8):
        backend = "plainort"

    @hookimpl
    def edgecraft_register_implementations(register):
        register(PlainInt8)
    """)
    (step,) = _compile("plain-cpu").steps
    assert step.stage == "onnx" and step.implementation.startswith("onnxruntime.quantization QDQ static")


def test_a_second_int8_for_one_backend_names_both_distributions(fake_dist: Any) -> None:
    fake_dist("fakeplug-int8", "fakeplug_int8", """
        from edgecraft.hookspecs import hookimpl
        from edgecraft.backends.onnxruntime.quantize import OrtInt8

        class Mine(OrtInt8):
            pass

        @hookimpl
        def edgecraft_register_implementations(register):
            register(Mine)
    """)
    with pytest.raises(PluginError) as info:
        build_registry()
    message = str(info.value)
    assert "'quantization.int8@onnxruntime' is registered twice" in message
    assert "fakeplug-int8" in message and "edgecraft 0.1.0" in message


@pytest.mark.parametrize(("body", "reason"), [
    ("register(object)", "not a subclass of an edgecraft implementation interface"),
    ("from edgecraft.quantize import Int8Implementation\n"
     "            register(type('NoBackend', (Int8Implementation,), {}))",
     "does not set the class attribute 'backend'"),
])
def test_registering_something_invalid_is_a_broken_plugin(fake_dist: Any, body: str, reason: str) -> None:
    fake_dist("fakeplug-bad", "fakeplug_bad", f"""
        from edgecraft.hookspecs import hookimpl

        @hookimpl
        def edgecraft_register_implementations(register):
            {body}
    """)
    assert reason in build_registry().broken["fakeplug_bad"].reason
    with pytest.raises(PluginError, match=reason):
        build_registry(strict=True)


def test_a_broken_backend_takes_its_implementations_with_it(fake_dist: Any) -> None:
    fake_dist("fakeplug-half", "fakeplug_half", PLAIN_BACKEND.replace("return [TargetInfo(", "raise OSError('x')\n"
                                                                      "            return [TargetInfo(") + """
    from edgecraft.backends.onnxruntime.quantize import OrtInt8

    class PlainInt8(OrtInt8):
        backend = "plainort"

    @hookimpl
    def edgecraft_register_implementations(register):
        register(PlainInt8)
    """)
    registry = build_registry()
    assert "fakeplug_half" in registry.broken and "quantization.int8@plainort" not in registry.implementations


def _code_strings(tree: ast.AST) -> list[tuple[int, str]]:
    """String constants that are code, not documentation (docstrings, Field descriptions)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
            skip.add(id(first.value))
        if isinstance(node, ast.keyword) and node.arg == "description":
            skip.update(id(n) for n in ast.walk(node.value))
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in skip]


def test_the_strategy_names_no_runtime_and_imports_none() -> None:
    runtimes = ("onnxruntime", "openvino", "nncf", "tvm")
    found = []
    for path in sorted(STRATEGY.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                found += [f"{path.name}: imports {n}" for n in names
                          if n.split(".")[0] in runtimes or n.startswith("edgecraft.backends")]
        found += [f"{path.name}:{line}: {text[:60]!r}" for line, text in _code_strings(tree)
                  if any(word in text.lower() for word in (*runtimes, "ort-cpu", "onnx runtime"))]
    assert not found, found
