"""The gate never lies, round 2 (issue 25), class 10 continued: full disks, symlink loops, a garbage search
database, and what ``validate`` cannot check. Each is a clean exit naming the path, never a traceback or a
runtime's own words (ONNX Runtime says "Protobuf serialization failed" for a full disk)."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from edgecraft.cli import main


def matmul_onnx(path: Path, n: int) -> None:
    """A MatMul with an n x n weight (n=200: 160 kB, more than the small disks below hold)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.random.default_rng(0).random((n, n), dtype=np.float32), "W")
    graph = helper.make_graph([helper.make_node("MatMul", ["input", "W"], ["output"])], "mm",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, n])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, n])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))


def write_plan(folder: Path, *, model: str = "mm.onnx", steps: bool = False, **extra: Any) -> Path:
    plan: dict[str, Any] = {"name": "never-lies-io", "model": {"kind": "onnx", "path": model},
                            "latency": {"warmup": 1, "repeats": 5, "rounds": 1, "threads": 1},
                            "targets": ["ort-cpu"], "contracts": [{"kind": "size", "min_ratio": 0.5}], **extra}
    if steps:
        np.savez(folder / "calib.npz", input=np.random.default_rng(1).random((8, 200), dtype=np.float32))
        plan["data"] = {"calib": {"kind": "npz", "path": "calib.npz"}}
        plan["steps"] = [{"strategy": "quantization",
                          "params": {"calibration_dataset": "calib", "calibration_samples": 8}}]
    path = folder / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Any]:
    """``small_disk(kib)``: a fresh tmpfs of that size (a real full disk: needs root, as CI runs)."""
    mounts: list[Path] = []

    def make(kib: int) -> Path:
        where = tmp_path / f"disk{len(mounts)}"
        where.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(where)],
                              capture_output=True, text=True, check=False)
        if done.returncode:
            pytest.skip(f"cannot mount a small tmpfs (needs root): {done.stderr.strip()}")
        mounts.append(where)
        return where

    yield make
    for where in mounts:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def test_a_full_tmpdir_names_the_folder_and_the_full_disk(tmp_path: Path, small_disk: Any,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    matmul_onnx(tmp_path / "mm.onnx", 200)
    plan = write_plan(tmp_path, steps=True)
    tmp = small_disk(64)  # room for small files, not for the quantized model the step writes there
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    code = main(["run", str(plan), "--cache-dir", str(tmp_path / "cache"), "-q"])
    err = capsys.readouterr().err
    assert code == 3, err  # the machine's failure (3), not bad input (2) nor the plugin's fault
    assert f"{tmp}" in err and "No space left on device" in err and "Traceback" not in err, err
    assert "fault of that plugin" not in err


def test_a_full_cache_names_the_cache_not_a_protobuf_error(tmp_path: Path, small_disk: Any,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    matmul_onnx(tmp_path / "mm.onnx", 200)
    plan = write_plan(tmp_path)
    cache = small_disk(200)  # the model's copy fits, the runtime's saved model does not
    code = main(["run", str(plan), "--cache-dir", str(cache / "c"), "-q"])
    err = capsys.readouterr().err
    assert code == 3, err
    assert f"{cache / 'c'}" in err and "No space left on device" in err, err
    assert "rotobuf" not in err and "Traceback" not in err, err


def test_a_symlink_loop_as_the_model_path_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "loop.onnx").symlink_to("loop.onnx")
    plan = write_plan(tmp_path, model="loop.onnx")
    for argv in (["validate", str(plan)], ["run", str(plan), "--cache-dir", str(tmp_path / "cache"), "-q"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "model.path" in err and "symbolic link loop" in err and "Traceback" not in err, err


@pytest.mark.search
@pytest.mark.parametrize("garbage", [b"\x8f\x00random bytes" * 100, b"SQLite format 3\x00" + b"\xff" * 2048])
def test_a_garbage_search_db_names_the_file_and_the_way_out(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            garbage: bytes) -> None:
    matmul_onnx(tmp_path / "mm.onnx", 200)
    plan = write_plan(tmp_path, steps=True, search={"objective": ["latency.p50", "size"], "trials": 1})
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "search.db").write_bytes(garbage)
    code = main(["search", str(plan), "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"{tmp_path / 'out' / 'search.db'}" in err and "delete it" in err and "Traceback" not in err, err


def test_validate_says_what_it_cannot_check_without_building(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    matmul_onnx(tmp_path / "mm.onnx", 8)
    plan = write_plan(tmp_path)
    assert main(["validate", str(plan)]) == 0
    out = capsys.readouterr().out
    assert "not checked without building" in out
    assert "NaN" in out and "runtime conversion" in out and "ort-cpu" in out, out
