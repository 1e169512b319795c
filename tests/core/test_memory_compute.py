"""Issue 17: MACs counted from ONNX graphs, peak memory measured in fresh processes, contracts on both."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import yaml
from edgecraft.cli import main
from edgecraft.plan import ComputeContract, MemoryContract
from edgecraft.verify.compute import count_graph, count_onnx
from edgecraft.verify.memory import MemoryStats, measure_peak_memory, range_confidence
from edgecraft.verify.report import ComputeReport
from edgecraft.verify.resources import judge_compute, judge_memory, reference_memory_verdict
from onnx import TensorProto, helper, numpy_helper

MIB = 1024 * 1024


def _model(nodes: list[Any], inputs: list[Any], outputs: list[Any], inits: list[Any], opset: int = 13) -> Any:
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _f(name: str, shape: list[Any]) -> Any:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _w(name: str, shape: tuple[int, ...], dtype: Any = np.float32) -> Any:
    return numpy_helper.from_array(np.ones(shape, dtype=dtype), name)


# ------------------------------------------------------------------------------------------ MAC counting
def test_conv_gemm_matmul_macs_match_hand_counts() -> None:
    # x [N,3,32,32] -> Conv 16x3x3x3 pad 1 -> [1,16,32,32]: 16*32*32 * 3*3*3 = 442368 MACs
    # -> depthwise Conv 16x1x3x3 group 16 stride 2 pad 1 -> [1,16,16,16]: 16*16*16 * 9 = 36864
    # -> Flatten [1,4096] -> Gemm 4096->10: 40960
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["a", "w2"], ["b"], pads=[1, 1, 1, 1], strides=[2, 2], group=16),
             helper.make_node("Flatten", ["b"], ["c"]),
             helper.make_node("Gemm", ["c", "w3", "b3"], ["y"], transB=1)]
    model = _model(nodes, [_f("x", ["batch", 3, 32, 32])], [_f("y", ["batch", 10])],
                   [_w("w1", (16, 3, 3, 3)), _w("w2", (16, 1, 3, 3)), _w("w3", (10, 4096)), _w("b3", (10,))])
    count = count_graph(model)  # the symbolic batch is counted at 1
    assert count.by_op == {"Conv": 442368 + 36864, "Gemm": 40960}
    assert count.macs == 442368 + 36864 + 40960
    assert count.params == 16 * 27 + 16 * 9 + 40960 + 10
    assert count.weight_bytes == 4 * count.params
    assert count.int8_macs == 0 and count.int8_fraction == 0.0
    # explicit shapes from the plan's I/O win over the file's symbols
    assert count_graph(model, {"x": (2, 3, 32, 32)}).macs == 2 * count.macs


def test_batched_matmul_and_conv_transpose() -> None:
    # [4,8,16] @ [4,16,32] -> [4,8,32], K=16: 4*8*32*16 = 16384
    # ConvTranspose x2 [1,4,5,5], weight [4,2,3,3] -> every input element * C_out/g * k*k = 100 * 2*9 = 1800
    nodes = [helper.make_node("MatMul", ["a", "b"], ["y"]),
             helper.make_node("ConvTranspose", ["x2", "wt"], ["z"])]
    model = _model(nodes, [_f("a", [4, 8, 16]), _f("b", [4, 16, 32]), _f("x2", [1, 4, 5, 5])],
                   [_f("y", None), _f("z", None)], [_w("wt", (4, 2, 3, 3))])
    count = count_graph(model)
    assert count.by_op == {"MatMul": 16384, "ConvTranspose": 1800}


def _qdq(name: str, scale: str, zp: str) -> list[Any]:
    return [helper.make_node("QuantizeLinear", [name, scale, zp], [f"{name}_q"]),
            helper.make_node("DequantizeLinear", [f"{name}_q", scale, zp], [f"{name}_dq"])]


def test_qdq_int8_graph_counts_int8_share_and_excludes_scales_from_params(tmp_path: Path) -> None:
    # Conv with DQ on data and weight: int8 (442368 MACs). MatMul with a DQ weight only: float (4096*10 = 40960).
    inits = [numpy_helper.from_array(np.ones((16, 3, 3, 3), np.int8), "w1_int8"),
             numpy_helper.from_array(np.array(0.1, np.float32), "s"),
             numpy_helper.from_array(np.array(0, np.int8), "z"),
             numpy_helper.from_array(np.ones((4096, 10), np.int8), "w2_int8"),
             numpy_helper.from_array(np.array([1, 4096], np.int64), "shape")]
    nodes = [*_qdq("x", "s", "z"),
             helper.make_node("DequantizeLinear", ["w1_int8", "s", "z"], ["w1"]),
             helper.make_node("Conv", ["x_dq", "w1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Slice", ["a", "st", "en"], ["a1"]),
             helper.make_node("Reshape", ["a1", "shape"], ["c"]),
             helper.make_node("DequantizeLinear", ["w2_int8", "s", "z"], ["w2"]),
             helper.make_node("MatMul", ["c", "w2"], ["y"])]
    inits += [numpy_helper.from_array(np.array([0], np.int64), "st"), numpy_helper.from_array(np.array([4], np.int64),
                                                                                            "en")]
    model = _model(nodes, [_f("x", [1, 3, 32, 32])], [_f("y", None)], inits)
    path = tmp_path / "qdq.onnx"
    onnx.save(model, path)
    count = count_onnx(path)
    assert count.macs == 442368 + 40960
    assert count.int8_macs == 442368
    assert count.int8_fraction == pytest.approx(442368 / (442368 + 40960))
    assert count.params == 16 * 27 + 40960  # no scales, zero points or int64 shapes
    assert count.weight_bytes == count.params  # int8 weights: one byte each


def test_integer_ops_count_as_int8() -> None:
    inits = [numpy_helper.from_array(np.ones((8, 4), np.int8), "w"),
             numpy_helper.from_array(np.ones((6, 3, 1, 1), np.int8), "wc")]
    nodes = [helper.make_node("MatMulInteger", ["a", "w"], ["y"]),
             helper.make_node("ConvInteger", ["x", "wc"], ["z"])]
    model = _model(nodes, [helper.make_tensor_value_info("a", TensorProto.UINT8, [2, 8]),
                           helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 3, 4, 4])],
                   [helper.make_tensor_value_info("y", TensorProto.INT32, None),
                    helper.make_tensor_value_info("z", TensorProto.INT32, None)], inits, opset=13)
    count = count_graph(model)
    assert count.by_op == {"MatMulInteger": 2 * 4 * 8, "ConvInteger": 6 * 4 * 4 * 3}
    assert count.int8_fraction == 1.0


# ------------------------------------------------------------------------------------------ judging
def _stats(samples: list[int]) -> MemoryStats:
    return MemoryStats(samples, [s + 80 * MIB for s in samples], [70 * MIB] * len(samples), True)


def test_memory_verdicts_on_the_range_of_repeats() -> None:
    comp = _stats([10 * MIB, 10 * MIB + 4096, 10 * MIB + 8192])
    base = _stats([20 * MIB, 20 * MIB, 20 * MIB])
    fail = judge_memory(MemoryContract(max_bytes=8 * MIB), base, comp)
    assert fail.status == "fail" and not fail.passed and "over by 2.00 MiB" in fail.detail
    assert fail.ci_low == 10 * MIB and fail.ci_high == 10 * MIB + 8192 and fail.confidence == 0.75
    straddle = judge_memory(MemoryContract(max_bytes=10 * MIB + 4096), base, comp)
    assert straddle.status == "inconclusive"
    ratio = judge_memory(MemoryContract(min_ratio=1.9), base, comp)
    assert ratio.status == "pass" and ratio.measured == pytest.approx(2.0, rel=1e-3)
    assert range_confidence(5) == pytest.approx(0.9375) and range_confidence(1) is None
    growth = reference_memory_verdict(5.0, comp, None, 9 * MIB, "recorded numbers")
    assert growth.status == "fail" and growth.origin == "reference" and growth.measured > 11


def test_compute_verdicts() -> None:
    base = ComputeReport(params=10, weight_bytes=40, macs=1000, int8_macs=0, int8_fraction=0.0)
    comp = ComputeReport(params=5, weight_bytes=5, macs=400, int8_macs=400, int8_fraction=1.0)
    over = judge_compute(ComputeContract(max_macs=300), base, comp)
    assert over.status == "fail" and "over by 100 MACs" in over.detail
    assert judge_compute(ComputeContract(min_ratio=2.5), base, comp).status == "pass"
    assert judge_compute(ComputeContract(min_ratio=3), base, comp).status == "fail"


# ------------------------------------------------------------------------------------------ plan errors
BASE_PLAN: dict[str, Any] = {"name": "t", "model": {"kind": "onnx", "path": "m.onnx"}, "targets": ["ort-cpu"]}


@pytest.mark.parametrize(("contract", "field"), [
    ({"kind": "memory", "max_bytes": -5}, "max_bytes"),
    ({"kind": "memory", "max_bytes": 5, "min_ratio": 2}, "max_bytes or min_ratio"),
    ({"kind": "memory"}, "max_bytes or min_ratio"),
    ({"kind": "memory", "min_ratio": 0}, "min_ratio"),
    ({"kind": "compute", "max_macs": -1}, "max_macs"),
    ({"kind": "compute", "max_macs": 10, "min_ratio": 2}, "max_macs or min_ratio"),
    ({"kind": "compute"}, "max_macs or min_ratio"),
])
def test_bad_bounds_are_exit_2_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                contract: dict[str, Any], field: str) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump({**BASE_PLAN, "contracts": [contract]}))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert field in err and "contracts[0]" in err.replace("contracts.0", "contracts[0]")


def test_measure_section_is_strict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump({**BASE_PLAN, "measure": {"memroy": True}}))
    assert main(["validate", str(path)]) == 2
    assert "memroy" in capsys.readouterr().err


def test_memory_bound_on_a_remote_target_is_a_compile_error(tmp_path: Path) -> None:
    """A target whose sessions run elsewhere cannot have a memory verdict: refused before anything is built."""
    from edgecraft.backend import TargetInfo
    from edgecraft.backends.onnxruntime.backend import OnnxRuntimeBackend, OrtCpuOptions
    from edgecraft.errors import CompileError
    from edgecraft.plan import RawPlan
    from edgecraft.registry import build_registry
    from edgecraft.runner import run_plan

    class RemoteBackend(OnnxRuntimeBackend):
        name = "remote-test"

        def targets(self) -> list[TargetInfo]:
            return [TargetInfo(name="remote-cpu", summary="a board over RPC", options_model=OrtCpuOptions)]

        def measures_memory_locally(self, target: str, options: Any) -> bool:
            return False

    import types

    from edgecraft.hookspecs import hookimpl

    @hookimpl
    def edgecraft_register_backends(register: Any) -> None:
        register(RemoteBackend)

    plugin = types.ModuleType("remote_test_plugin")
    plugin.edgecraft_register_backends = edgecraft_register_backends  # type: ignore[attr-defined]
    model = _model([helper.make_node("Relu", ["x"], ["y"])], [_f("x", [1, 4])], [_f("y", [1, 4])], [])
    onnx.save(model, tmp_path / "m.onnx")
    plan = RawPlan.model_validate({**BASE_PLAN, "targets": ["remote-cpu"],
                                           "contracts": [{"kind": "memory", "max_bytes": 1000}]})
    with pytest.raises(CompileError, match="remote device"):
        run_plan(plan, build_registry(extra_plugins=[plugin]), base_dir=tmp_path, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("manifest.json"))


# ------------------------------------------------------------------------------------------ child processes
def _expand_model(folder: Path, n: int) -> Path:
    """x [1,1] -> Expand to [n, n] float32 -> ReduceSum: the middle tensor holds n*n*4 bytes."""
    folder.mkdir(parents=True)
    shape = numpy_helper.from_array(np.array([n, n], dtype=np.int64), "shape")
    nodes = [helper.make_node("Expand", ["x", "shape"], ["big"]), helper.make_node("ReduceSum", ["big"], ["y"])]
    onnx.save(_model(nodes, [_f("x", [1, 1])], [_f("y", None)], [shape]), folder / "model.onnx")
    return folder


@pytest.mark.slow
def test_a_64_mib_intermediate_shows_in_peak_memory(tmp_path: Path) -> None:
    big = _expand_model(tmp_path / "big", 4096)  # 4096*4096*4 bytes = 64 MiB
    small = _expand_model(tmp_path / "small", 8)
    stats = measure_peak_memory({"big": big, "small": small}, target="ort-cpu", options={},
                                feeds={"x": np.ones((1, 1), np.float32)}, threads=1, repeats=2)
    extra = stats["big"].median - stats["small"].median
    # at least the tensor itself; at most a few copies of it (the arena may round up, ReduceSum may copy)
    assert 0.9 * 64 * MIB <= extra <= 4 * 64 * MIB, extra
    assert stats["small"].median < 32 * MIB
    assert all(s.reset for s in stats.values())


@pytest.fixture
def workdir(tmp_path: Path, example_dir: Path) -> Path:
    for name in ("model.py", "digits_resnet.pt"):
        shutil.copy(example_dir / name, tmp_path / name)
    return tmp_path


def _run(workdir: Path, plan: dict[str, Any], name: str, *extra: str) -> tuple[int, dict[str, Any]]:
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(plan))
    report = workdir / f"{name}.json"
    code = main(["run", str(path), "--report-json", str(report), "--cache-dir", str(workdir / "cache"), "-q",
                 "--markdown", str(workdir / f"{name}.md"), "--junit", str(workdir / f"{name}.xml"), *extra])
    return code, json.loads(report.read_text())


@pytest.mark.slow
def test_memory_contract_fails_by_how_much_and_reference_gates_memory_and_macs(workdir: Path) -> None:
    plan: dict[str, Any] = {
        "name": "mem", "model": {"kind": "torch", "factory": "model.py:build", "input_shape": [1, 1, 32, 32]},
        "latency": {"warmup": 1, "repeats": 10, "rounds": 2, "threads": 1},
        "targets": ["ort-cpu"], "measure": {"memory": True, "memory_repeats": 2},
        "contracts": [{"kind": "memory", "max_bytes": 100_000}, {"kind": "compute", "max_macs": 10**9}],
    }
    code, report = _run(workdir, plan, "first")
    assert code == 1
    target = report["targets"][0]
    memory = next(v for v in target["contracts"] if v["kind"] == "memory")
    assert memory["status"] == "fail" and "over by" in memory["detail"] and memory["measured"] > 100_000
    assert next(v for v in target["contracts"] if v["kind"] == "compute")["status"] == "pass"
    comp = target["compressed"]
    assert comp["memory"]["measured"] and len(comp["memory"]["samples"]) == 2 and comp["memory"]["peak_bytes"] > 0
    assert comp["compute"]["macs"] == 48530688  # hand count of the digits net (Conv + Gemm), batch 1
    assert "peak memory" in (workdir / "first.md").read_text()
    assert "compressed_peak_memory_bytes" in (workdir / "first.xml").read_text()

    # gate the same model against that report: neither memory nor MACs grew
    plan = {**plan, "contracts": [], "measure": {"memory": False},
            "gate": {"reference": {"max_latency_regression_pct": None, "max_accuracy_drop": None,
                                   "max_memory_growth_pct": 10, "max_macs_growth_pct": 0}}}
    code, report = _run(workdir, plan, "second", "--reference", str(workdir / "first.json"))
    verdicts = {v["kind"]: v for v in report["targets"][0]["contracts"]}
    assert code == 0, verdicts
    assert verdicts["memory"]["origin"] == "reference" and verdicts["compute"]["measured"] == 0.0
    assert report["targets"][0]["reference"]["memory_bytes"] > 0


def test_an_artifact_in_several_roles_is_counted_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A plan without steps: the baseline is the compressed artifact, and against its own report the reference is
    # too. Counting it three times (ONNX shape inference + the runtime's executed graph, each) cost ~5 s of a
    # ~20 s gate run of a ResNet-18-sized model on a loaded runner (issue 25, gate_cost's time). And a second run
    # on the same cached artifact reads the count the first one kept (edgecraft.verify.compute_memo).
    import edgecraft.verify.compute_memo as memo

    model = _model([helper.make_node("Gemm", ["x", "w"], ["y"])], [_f("x", [1, 4])], [_f("y", [1, 3])],
                   [_w("w", (4, 3))])
    onnx.save(model, tmp_path / "m.onnx")
    counted: list[Path] = []
    real_count = memo.count_artifact

    def spy(folder: Path, shapes: Any) -> Any:
        counted.append(Path(folder))
        return real_count(folder, shapes)

    monkeypatch.setattr(memo, "count_artifact", spy)
    plan = {"name": "once", "model": {"kind": "onnx", "path": "m.onnx"}, "targets": ["ort-cpu"],
            "latency": {"warmup": 1, "rounds": 4, "min_calls": 2, "max_calls": 2, "threads": 1},
            "contracts": [{"kind": "compute", "max_macs": 100}],
            "gate": {"reference": {"max_latency_regression_pct": None, "max_accuracy_drop": None,
                                   "max_size_growth_pct": None, "max_macs_growth_pct": 0}}}
    code, first = _run(tmp_path, {k: v for k, v in plan.items() if k != "gate"}, "first")
    assert code == 0 and len(counted) == 1  # baseline and compressed: one artifact
    assert memo.REUSED_NOTE not in first["targets"][0]["compressed"]["compute"]["notes"]
    counted.clear()
    code, second = _run(tmp_path, plan, "second", "--reference", str(tmp_path / "first.json"))
    target = second["targets"][0]
    # baseline, compressed and the re-measured reference: one artifact, whose count the first run kept
    assert code == 0 and counted == [], counted
    assert memo.REUSED_NOTE in target["compressed"]["compute"]["notes"]
    assert target["baseline"]["compute"]["macs"] == target["compressed"]["compute"]["macs"] == 12
    assert target["reference"]["macs"] == 12
    assert next(v for v in target["contracts"] if v["origin"] == "reference" and v["kind"] == "compute")[
        "measured"] == 0.0
