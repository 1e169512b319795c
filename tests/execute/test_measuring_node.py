"""What a Ray node that only *measures* must share with the CLI, and what it may not (no cluster needed).

A board measures artifacts built elsewhere: its Python patch release, its torch (none) and its runtime build
(onnxruntime's aarch64 wheel) differ from the CLI's host, and that must not stop it; the code that measures and
judges (edgecraft and every plugin) must be the CLI's. A building node must match in everything. Also: shipped
artifacts unpack safely on Pythons without tarfile's extraction filters (Debian 12's 3.11.2), and the check that
tells a process runs emulated.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from edgecraft.errors import RuntimeFailure


def _work(tmp_path: Path) -> tuple[Any, Any]:
    """A compiled ort-cpu plan (a tiny ONNX Gemm, .npz data) and the TargetWork the CLI would send."""
    import onnx
    from edgecraft import __version__
    from edgecraft.compile.checks import compile_all, prepare
    from edgecraft.execute.ray_tasks import TargetWork
    from edgecraft.plan.loading import validate_plan
    from edgecraft.registry import build_registry
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3) / 10, "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])], [weights])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "m.onnx")
    np.savez(tmp_path / "d.npz", x=np.ones((4, 4), np.float32), y=np.zeros(4, np.int64))
    raw = {"schema": "edgecraft.plan/v1", "name": "measuring", "model": {"kind": "onnx", "path": "m.onnx"},
           "data": {"d": {"kind": "npz", "path": "d.npz"}}, "evaluation": {"dataset": "d", "metrics": ["agreement"]},
           "targets": ["ort-cpu"]}
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(raw))
    registry = build_registry()
    plan = validate_plan(raw, registry, source="plan.yaml")
    compiled = compile_all(prepare(plan, registry, tmp_path), ["ort-cpu"])["ort-cpu"]
    work = TargetWork(plan=plan.model_dump(mode="json", by_alias=True), plan_source="plan.yaml",
                      base_dir=str(tmp_path), label="ort-cpu", key=compiled.key(),
                      baseline_key=compiled.baseline().key(), versions=dict(compiled.versions),
                      edgecraft_version=__version__, plugins=None, disabled_plugins=None, shared_cache=None)
    return work, compiled


def _as_if_cli_had(work: Any, compiled: Any, **versions: str) -> Any:
    """``work`` as a CLI whose tools had ``versions`` would send it (its key follows its versions)."""
    import dataclasses

    changed = {**compiled.versions, **versions}
    return dataclasses.replace(work, versions=changed, key=compiled.model_copy(update={"versions": changed}).key())


def test_a_measuring_node_may_differ_in_build_tools_and_says_so(tmp_path: Path) -> None:
    from edgecraft.execute.ray_tasks import _prepare_on_node

    work, compiled = _work(tmp_path)
    other = _as_if_cli_had(work, compiled, **{"python": "3.11.7", "runtime:onnxruntime": "9.9.9", "torch": "2.13.0"})
    node: dict[str, Any] = {"node_id": "b0a4d", "address": "127.0.0.1", "hostname": "board"}
    _, used = _prepare_on_node(other, node, measuring=True)
    assert used.key() == other.key  # the CLI's compiled plan: the shipped artifacts are found by its keys
    assert used.baseline().key() == compiled.model_copy(update={"versions": other.versions}).baseline().key()
    differing = node["versions_differing_from_cli"]
    assert differing["runtime:onnxruntime"] == {"node": compiled.versions["runtime:onnxruntime"], "cli": "9.9.9"}
    assert set(differing) == {"runtime:onnxruntime"} | {k for k in ("python", "torch")
                                                         if compiled.versions[k] != other.versions[k]}


def test_a_building_node_must_match_everything(tmp_path: Path) -> None:
    from edgecraft.execute.ray_tasks import _prepare_on_node

    work, compiled = _work(tmp_path)
    other = _as_if_cli_had(work, compiled, **{"runtime:onnxruntime": "9.9.9"})
    with pytest.raises(RuntimeFailure, match=r"would build something else.*runtime:onnxruntime: .* here, 9\.9\.9"):
        _prepare_on_node(other, {"node_id": "x"}, measuring=False)


@pytest.mark.parametrize("key", ["edgecraft", "plugin:onnxruntime", "plugin:sources"])
def test_a_measuring_node_must_run_the_clis_code(tmp_path: Path, key: str) -> None:
    from edgecraft.execute.ray_tasks import _prepare_on_node

    work, compiled = _work(tmp_path)
    other = _as_if_cli_had(work, compiled, **{key: "0.0.0-other", "runtime:onnxruntime": "9.9.9"})
    with pytest.raises(RuntimeFailure, match=f"would build something else.*{key}"):
        _prepare_on_node(other, {"node_id": "x"}, measuring=True)


def _tar(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize("filters", [True, False], ids=["python-with-filters", "python-3.11.2"])
def test_shipped_artifacts_unpack_safely(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, filters: bool) -> None:
    from edgecraft.execute.ray_tasks import _pack, _unpack

    if not filters:  # Debian 12's Python 3.11.2 (the emulated board's; many boards') has no extraction filters
        monkeypatch.delattr(tarfile, "data_filter")
    folder = tmp_path / "artifact"
    (folder / "sub").mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"onnx")
    (folder / "sub" / "manifest.json").write_text("{}")
    _unpack(_pack(folder), tmp_path / "out")
    assert (tmp_path / "out" / "model.onnx").read_bytes() == b"onnx"
    assert (tmp_path / "out" / "sub" / "manifest.json").read_text() == "{}"
    with pytest.raises((RuntimeFailure, tarfile.TarError)):
        _unpack(_tar({"../escaped": b"x"}), tmp_path / "out2")
    assert not (tmp_path / "escaped").exists()


def test_user_mode_emulation_is_read_from_the_kernel() -> None:
    from edgecraft.cpu import user_mode_emulation

    x86_cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu avx2\n"
    arm_cpuinfo = "processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd asimddp\nCPU implementer\t: 0x41\n"
    assert user_mode_emulation("x86_64", "x86_64", x86_cpuinfo) is None  # the host itself
    assert user_mode_emulation("aarch64", "aarch64", arm_cpuinfo) is None  # a real board
    why = user_mode_emulation("aarch64", "x86_64", arm_cpuinfo)  # QEMU 8+ shows an ARM cpuinfo: the kernel tells
    assert why is not None and "x86_64 kernel" in why
    old_kernel = user_mode_emulation("aarch64", "", x86_cpuinfo)  # no /proc/sys/kernel/arch: QEMU 7.2's cpuinfo
    assert old_kernel is not None and "x86 /proc/cpuinfo" in old_kernel
    assert user_mode_emulation("aarch64", "", arm_cpuinfo) is None


def test_device_local_under_emulation_is_emulated_and_refuses_a_strict_latency_contract(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the Ray node inside the emulated board decides when it recompiles the plan (the CLI's x86 host cannot
    know): ort-aarch64 with device: local, in an aarch64 process on an x86 kernel, is emulated, so a latency
    contract without allow_emulated is refused there before anything is timed; on the host it compiles."""
    import platform

    import edgecraft.cpu
    from edgecraft.compile.checks import compile_all, prepare
    from edgecraft.errors import InputError
    from edgecraft.plan.loading import validate_plan
    from edgecraft.registry import build_registry

    _work(tmp_path)  # writes m.onnx and d.npz
    raw = {"schema": "edgecraft.plan/v1", "name": "strict", "model": {"kind": "onnx", "path": "m.onnx"},
           "data": {"d": {"kind": "npz", "path": "d.npz"}}, "evaluation": {"dataset": "d", "metrics": ["agreement"]},
           "targets": [{"target": "ort-aarch64", "options": {"device": "local"}}],
           "contracts": [{"kind": "latency", "max_ms": 100}]}
    registry = build_registry()
    plan = validate_plan(raw, registry, source="plan.yaml")
    compile_all(prepare(plan, registry, tmp_path), ["ort-aarch64"])  # the CLI's x86 host: not emulated
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(edgecraft.cpu, "user_mode_emulation", lambda: "this aarch64 process runs on a x86_64 kernel")
    with pytest.raises(InputError, match="cannot be judged on an emulated device"):
        compile_all(prepare(plan, registry, tmp_path), ["ort-aarch64"])


def test_the_plan_sent_to_nodes_keeps_defaults_as_defaults(tmp_path: Path) -> None:
    """An unlabeled .npz (no 'y' key) is fine in a plan; written out with its defaults, its labels key became
    explicit and a node re-validating it refused the file. Sent with only what the plan set, it compiles the same."""
    from edgecraft.compile.checks import compile_all, prepare
    from edgecraft.execute.ray_tasks import plan_for_nodes
    from edgecraft.plan.loading import validate_plan
    from edgecraft.registry import build_registry

    _work(tmp_path)
    np.savez(tmp_path / "unlabeled.npz", x=np.ones((4, 4), np.float32))
    raw = {"schema": "edgecraft.plan/v1", "name": "unlabeled", "model": {"kind": "onnx", "path": "m.onnx"},
           "data": {"u": {"kind": "npz", "path": "unlabeled.npz"}},
           "evaluation": {"dataset": "u", "metrics": ["agreement"]}, "targets": ["ort-cpu"]}
    registry = build_registry()
    plan = validate_plan(raw, registry, source="plan.yaml")
    here = compile_all(prepare(plan, registry, tmp_path), ["ort-cpu"])["ort-cpu"]
    on_node = validate_plan(plan_for_nodes(plan), registry, source="plan (node)")
    assert on_node == plan
    assert compile_all(prepare(on_node, registry, tmp_path), ["ort-cpu"])["ort-cpu"].key() == here.key()
