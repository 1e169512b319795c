"""Target options, targets and capabilities of the TVM backend (fast; no TVM compile)."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest
from edgecraft.backends.tvm.backend import AARCH64, HOST, TvmBackend
from edgecraft.backends.tvm.elf import elf_machine
from edgecraft.backends.tvm.options import AArch64Options, HostOptions
from pydantic import ValidationError


def test_targets_declare_emulation_and_no_int8() -> None:
    infos = {t.name: t for t in TvmBackend().targets()}
    assert set(infos) == {AARCH64, HOST}
    assert infos[AARCH64].emulated is True
    assert infos[HOST].emulated is False
    for info in infos.values():
        assert not any("int8" in c for c in info.capabilities), info.capabilities


def test_aarch64_defaults_and_target_dict() -> None:
    from edgecraft.backends.tvm.compile import target_dict

    opts = AArch64Options(cpu="cortex-a76", mattr=["+dotprod"])
    assert opts.device == "emulated"
    spec = target_dict(AARCH64, opts)
    assert spec == {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "cortex-a76",
                    "mattr": ["+neon", "+dotprod"]}


@pytest.mark.parametrize(("options", "fragment"), [
    ({"mattr": ["dotprod"]}, "'+name' to enable"),
    ({"cpu": "Cortex A72"}, "not an LLVM CPU name"),
    ({"device": "rpc"}, "needs rpc_host"),
    ({"device": "tracker", "tracker_host": "t"}, "needs tracker_host and tracker_key"),
    ({"rpc_host": "10.0.0.2"}, "set device: rpc"),
    ({"tuning": {"trials": 8}}, "tuning on the emulated device is pointless"),
    ({"device": "board"}, "'emulated', 'rpc' or 'tracker'"),
    ({"cpu_model": "cortex-a72"}, "Extra inputs are not permitted"),
    ({"device": "rpc", "rpc_host": "h", "rpc_port": 70000}, "less than or equal to 65535"),
])
def test_bad_aarch64_options_are_named(options: dict, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        AArch64Options.model_validate(options)
    assert fragment in str(info.value)


def test_host_options_reject_bad_features() -> None:
    with pytest.raises(ValidationError, match="not an LLVM feature"):
        HostOptions(mattr=["avx2"])
    assert HostOptions(tuning={"trials": 4}).tuning.trials == 4


def test_elf_machine(tmp_path: Path) -> None:
    assert elf_machine(Path(sys.executable).resolve()) in {"x86_64", "aarch64"}
    fake = tmp_path / "arm.so"
    fake.write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 11 + struct.pack("<H", 183) + b"\0" * 40)
    assert elf_machine(fake) == "aarch64"
    text = tmp_path / "not-elf.so"
    text.write_text("hello")
    assert elf_machine(text) is None
