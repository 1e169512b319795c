"""Issue 25 (gate cost): an artifact's compute count is kept beside it and reused, never trusted blindly.

A count cannot change while the artifact's files do not, so later runs on the same cached artifact read it
back (``edgecraft.verify.compute_memo``, ``edgecraft.artifact_facts``); a changed artifact, other inputs or
a garbage fact file are counted again, without a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from edgecraft.artifact_facts import store_fact
from edgecraft.backends.onnxruntime.backend import OnnxRuntimeBackend, OrtCpuOptions
from onnx import TensorProto, helper, numpy_helper

SHAPES = {"x": (1, 4)}
FEEDS = {"x": np.ones((1, 4), dtype=np.float32)}


def _gemm(n_out: int) -> Any:
    graph = helper.make_graph([helper.make_node("Gemm", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n_out])],
                              [numpy_helper.from_array(np.ones((4, n_out), dtype=np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def _artifact(folder: Path, n_out: int, created: str = "2026-01-01T00:00:00Z") -> Path:
    """An artifact folder as the cache holds one: the backend's file, its lineage graph, a manifest."""
    (folder / "lineage").mkdir(parents=True, exist_ok=True)
    onnx.save(_gemm(n_out), folder / "model.onnx")
    onnx.save(_gemm(n_out), folder / "lineage" / "model.onnx")
    files = [{"path": p, "bytes": (folder / p).stat().st_size, "sha256": "x"} for p in
             ("model.onnx", "lineage/model.onnx")]
    (folder / "manifest.json").write_text(json.dumps({"key": "k", "created": created, "files": files,
                                                      "size_bytes": 1, "compiled_plan": {"steps": []}}))
    return folder


class Spies:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, backend: Any) -> None:
        import edgecraft.verify.compute_memo as memo

        self.counts: list[Path] = []
        self.executed: list[Path] = []
        real_count, real_exec = memo.count_artifact, backend.executed_compute

        def count(folder: Path, shapes: Any) -> Any:
            self.counts.append(Path(folder))
            return real_count(folder, shapes)

        def executed(folder: Path, *args: Any) -> Any:
            self.executed.append(Path(folder))
            return real_exec(folder, *args)

        monkeypatch.setattr(memo, "count_artifact", count)
        monkeypatch.setattr(backend, "executed_compute", executed)


def _compute(folder: Path, backend: Any, *, threads: int = 1, shapes: Any = SHAPES,
             options: Any = None) -> tuple[Any, bool]:
    from edgecraft.verify.compute_memo import artifact_compute

    return artifact_compute(folder, None, backend=backend, target="ort-cpu", options=options or OrtCpuOptions(),
                            threads=threads, feeds=FEEDS, input_shapes=shapes)


def test_the_count_is_reused_on_a_second_run_of_the_same_artifact(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from edgecraft.verify.compute_memo import REUSED_NOTE

    backend = OnnxRuntimeBackend()
    spies = Spies(monkeypatch, backend)
    folder = _artifact(tmp_path / "a", 3)
    first, reused = _compute(folder, backend)
    assert not reused and first.macs == 12 and first.executed is not None and REUSED_NOTE not in first.notes
    assert len(spies.counts) == len(spies.executed) == 1
    assert len(list((folder / "facts").glob("compute-*.json"))) == 1
    second, reused = _compute(folder, backend)
    assert reused and len(spies.counts) == len(spies.executed) == 1  # neither counter ran again
    assert second.model_dump(exclude={"notes"}) == first.model_dump(exclude={"notes"})
    assert REUSED_NOTE in second.notes


def test_a_changed_artifact_or_other_inputs_are_counted_again(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    backend = OnnxRuntimeBackend()
    spies = Spies(monkeypatch, backend)
    folder = _artifact(tmp_path / "a", 3)
    assert _compute(folder, backend)[0].macs == 12
    # the entry rebuilt in place (the cache replaces a failing entry): another manifest, another count
    _artifact(folder, 5, created="2026-01-02T00:00:00Z")
    count, reused = _compute(folder, backend)
    assert not reused and count.macs == 20 and len(spies.counts) == 2
    # same files, other input shapes / threads / options: each its own count
    assert not _compute(folder, backend, shapes={"x": (2, 4)})[1]
    assert not _compute(folder, backend, threads=2)[1]
    assert not _compute(folder, backend, options=OrtCpuOptions(runtime_optimization="basic"))[1]
    assert len(spies.counts) == 5
    assert _compute(folder, backend)[1] and _compute(folder, backend, threads=2)[1]  # each kept


@pytest.mark.parametrize("garbage", [b"\x00\xffnot json", b"[1, 2]", b"{}", "value-wrong-type", "negative-macs",
                                     "other-key", "a-directory"])
def test_a_corrupt_stored_count_is_ignored_and_counted_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             garbage: Any) -> None:
    backend = OnnxRuntimeBackend()
    spies = Spies(monkeypatch, backend)
    folder = _artifact(tmp_path / "a", 3)
    first, _ = _compute(folder, backend)
    (fact,) = (folder / "facts").glob("compute-*.json")
    stored = json.loads(fact.read_text())
    if isinstance(garbage, bytes):
        fact.write_bytes(garbage)
    elif garbage == "value-wrong-type":
        fact.write_text(json.dumps({**stored, "value": {**stored["value"], "macs": "many"}}))
    elif garbage == "negative-macs":
        fact.write_text(json.dumps({**stored, "value": {**stored["value"], "macs": -5}}))
    elif garbage == "other-key":  # a fact file renamed onto this one: its key does not match
        fact.write_text(json.dumps({**stored, "key": "0" * 64, "value": {**stored["value"], "macs": 1}}))
    else:
        fact.unlink()
        fact.mkdir()
    count, reused = _compute(folder, backend)
    assert not reused and count.macs == first.macs == 12 and len(spies.counts) == 2
    if garbage != "a-directory":  # rewritten: the next run reuses it again
        assert _compute(folder, backend)[1]


def test_what_cannot_be_kept_is_counted_every_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = OnnxRuntimeBackend()
    spies = Spies(monkeypatch, backend)
    # no manifest (not a cache entry): no key, nothing kept
    folder = _artifact(tmp_path / "a", 3)
    (folder / "manifest.json").unlink()
    assert not _compute(folder, backend)[1] and not _compute(folder, backend)[1]
    assert not (folder / "facts").exists() and len(spies.counts) == 2
    # the executed graph could not be read (a transient failure): the report says why and is not kept
    other = _artifact(tmp_path / "b", 3)

    def broken(*args: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(backend, "executed_compute", broken)
    count, reused = _compute(other, backend)
    assert not reused and count.macs == 12 and any("could not be read" in n for n in count.notes)
    assert not list((other / "facts").glob("compute-*.json"))
    # a facts folder that cannot be written (a file in its place): counted, no traceback
    third = _artifact(tmp_path / "c", 3)
    (third / "facts").write_text("not a folder")
    monkeypatch.undo()
    assert not _compute(third, backend)[1] and not store_fact(third, "compute", "k" * 64, {})


def test_ort_int8_layer_description_is_kept_and_garbage_is_recounted(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import edgecraft.backends.onnxruntime.int8_layers as layers
    import onnxruntime as ort

    folder = _artifact(tmp_path / "a", 3)
    calls: list[Path] = []
    real = layers.session_int8_layers

    def spy(path: Path, so: Any) -> Any:
        calls.append(path)
        return real(path, so)

    monkeypatch.setattr(layers, "session_int8_layers", spy)

    def describe() -> Any:
        so = ort.SessionOptions()
        return layers.artifact_int8_layers(folder / "model.onnx", "all", so)

    first = describe()
    assert first["float"] and len(calls) == 1
    assert describe() == first and len(calls) == 1
    (fact,) = (folder / "facts").glob("ort-int8-layers-*.json")
    stored = json.loads(fact.read_text())
    fact.write_text(json.dumps({**stored, "value": {**stored["value"], "all_int8": "yes"}}))
    assert describe() == first and len(calls) == 2
    fact.write_bytes(b"\x89garbage")
    assert describe() == first and len(calls) == 3
