"""The executor interface without a cluster: placement in plans, the in-process default, what --ray needs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from edgecraft.errors import EXIT_BAD_INPUT, InputError, RuntimeFailure
from edgecraft.plan import Placement, TargetSpec
from pydantic import ValidationError


def test_placement_is_strict_and_documented() -> None:
    spec = TargetSpec(target="ort-cpu", placement={"resources": {"arch:aarch64": 1}, "timeout_s": 30})
    assert spec.placement is not None and spec.placement.resources == {"arch:aarch64": 1.0}
    assert spec.placement.max_retries == 2 and spec.placement.build_resources == {}
    with pytest.raises(ValidationError, match="extra"):
        TargetSpec(target="ort-cpu", placement={"resource": {"a": 1}})
    with pytest.raises(ValidationError, match="built-in resource"):
        Placement(resources={"CPU": 2})
    with pytest.raises(ValidationError, match="positive"):
        Placement(resources={"board:a": 0})
    schema = Placement.model_json_schema()
    assert all(field.get("description") for field in schema["properties"].values())


def test_the_default_executor_is_in_process() -> None:
    from edgecraft.execute import executor_for
    from edgecraft.execute.local import InProcessExecutor

    executor = executor_for(None)
    assert isinstance(executor, InProcessExecutor) and executor.describe() is None


def test_ray_without_the_extra_is_bad_input(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from edgecraft.cli import main
    from edgecraft.execute import executor_for

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(InputError, match="ray extra"):
        executor_for("127.0.0.1:6379")
    plan = tmp_path / "plan.yaml"
    plan.write_text("schema: edgecraft.plan/v1\n")
    assert main(["run", str(plan), "--ray", "local"]) == EXIT_BAD_INPUT
    assert "pip install 'edgecraft[ray]'" in capsys.readouterr().err


@pytest.mark.ray
def test_the_measuring_node_never_builds(tmp_path: Path) -> None:
    from edgecraft.execute.ray_tasks import ShippedCache

    cache = ShippedCache(tmp_path)
    assert cache.lookup("ab" * 32) is None
    with pytest.raises(RuntimeFailure, match="does not build"), cache.building("ab" * 32):
        pass


@pytest.mark.ray
def test_artifacts_pack_and_unpack(tmp_path: Path) -> None:
    from edgecraft.execute.ray_tasks import _pack, _unpack

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "lineage").mkdir()
    (tmp_path / "a" / "model.onnx").write_bytes(b"\x00" * 10)
    (tmp_path / "a" / "lineage" / "x").write_text("y")
    out = tmp_path / "b"
    out.mkdir()
    _unpack(_pack(tmp_path / "a"), out)
    assert (out / "model.onnx").read_bytes() == b"\x00" * 10 and (out / "lineage" / "x").read_text() == "y"
