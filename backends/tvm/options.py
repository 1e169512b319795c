"""Options of the TVM targets (strict pydantic models: a misspelled option is a plan error).

Example plan entries::

    targets:
      - target: tvm-aarch64                 # emulated device (default), prepared once by
        options: {cpu: cortex-a76, mattr: ["+dotprod"]}   # `edgecraft device setup arm64-emulated`
      - target: tvm-aarch64                 # one board running `python -m tvm.exec.rpc_server`
        label: rpi4
        options: {cpu: cortex-a72, device: rpc, rpc_host: 192.0.2.10, rpc_port: 9090}
      - target: tvm-aarch64                 # a farm of boards behind a TVM RPC tracker
        label: farm
        options: {device: tracker, tracker_host: tracker.lan, tracker_port: 9190, tracker_key: rk3588}
      - target: tvm-aarch64                 # emulated boards behind a tracker (`edgecraft device serve`)
        label: emulated-farm
        options: {device: tracker, tracker_host: 127.0.0.1, tracker_key: arm64-emulated, board_emulated: true}
      - target: tvm-llvm-host
        options: {tuning: {trials: 64}}
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from edgecraft.backend import TargetOptions
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_FEATURE = re.compile(r"^[+-][a-z0-9][a-z0-9.-]*$")


class TuningOptions(BaseModel):
    """MetaSchedule tuning: on this machine (tvm-llvm-host) or on a tracker's boards (tvm-aarch64 with device:
    tracker). Logs are cached per (model, target, board kind, trials) and reused by later builds."""

    model_config = ConfigDict(extra="forbid")

    trials: int = Field(64, ge=1, le=20000, description="Total MetaSchedule trials across all tasks "
                        "(about 1-2 s each on the host; 15 min bought ~3.4x on a small CNN).")
    log_dir: Path | None = Field(None, description="Where tuning logs are kept and reused. Default: "
                                 "$EDGECRAFT_TUNING_CACHE or ~/.cache/edgecraft/tvm-tuning.")
    num_cores: int | None = Field(None, ge=1, le=512, description="Cores of the CPU the code runs on; MetaSchedule "
                                  "sizes parallel schedules with it. Default: this machine's for tvm-llvm-host, 4 "
                                  "for tvm-aarch64 boards.")


class _TvmOptions(TargetOptions):
    tuning: TuningOptions | None = Field(None, description="MetaSchedule tuning (off by default: untuned "
                                         "TVM is far slower than ONNX Runtime on x86; tuning needs xgboost "
                                         "and apache-tvm-ffi==0.1.14.post1).")
    check_tolerance: float = Field(1e-4, gt=0, description="Each load runs a probe input on the device and "
                                   "compares it with ONNX Runtime on the host (recorded at build): largest "
                                   "allowed |diff| / max(1, max|reference|).")


class HostOptions(_TvmOptions):
    """Options of ``tvm-llvm-host``: LLVM for the machine that runs edgecraft."""

    cpu: str | None = Field(None, description="LLVM -mcpu. Default: the host CPU LLVM detects "
                            "(without it LLVM targets generic x86-64, no AVX).")
    mattr: list[str] = Field(default_factory=list, description="Extra LLVM features, e.g. ['+avx512f'].")

    @field_validator("mattr")
    @classmethod
    def _features(cls, value: list[str]) -> list[str]:
        return _check_features(value)


class AArch64Options(_TvmOptions):
    """Options of ``tvm-aarch64``: LLVM for aarch64-linux-gnu (NEON), cross-linked, run over TVM RPC."""

    cpu: str = Field("cortex-a72", description="LLVM -mcpu for the board: cortex-a53, cortex-a55, "
                     "cortex-a72 (Raspberry Pi 4), cortex-a76 (Raspberry Pi 5, RK3588), neoverse-n1, generic, ...")
    mattr: list[str] = Field(default_factory=list, description="Extra LLVM features beyond the CPU's, e.g. "
                             "['+dotprod'], ['+i8mm'], ['+sve']. NEON (+neon) is always on.")
    device: Literal["emulated", "rpc", "tracker"] = Field(
        "emulated", description="Where it runs: 'emulated' (QEMU arm64 device edgecraft prepares and starts), "
        "'rpc' (a board running TVM's RPC server at rpc_host:rpc_port) or 'tracker' (a TVM RPC tracker that "
        "hands out a free board registered under tracker_key).")
    rpc_host: str | None = Field(None, description="device: rpc: the board's address.")
    rpc_port: int = Field(9090, ge=1, le=65535, description="device: rpc: the board's RPC server port.")
    tracker_host: str | None = Field(None, description="device: tracker: the tracker's address.")
    tracker_port: int = Field(9190, ge=1, le=65535, description="device: tracker: the tracker's port.")
    tracker_key: str | None = Field(None, description="device: tracker: the device key the boards registered "
                                    "with (`rpc_server --tracker HOST:PORT --key KEY`).")
    session_timeout: float = Field(0, ge=0, description="Seconds after which the RPC server ends the session "
                                   "(0: none). Frees a tracker's board if edgecraft dies.")
    tracker_timeout: float = Field(300, gt=0, description="device: tracker: seconds to wait for a free board "
                                   "with tracker_key before the target fails (exit 3, naming the key).")
    board_emulated: bool = Field(False, description="device: rpc or tracker: the boards are emulated ones "
                                 "(`edgecraft device serve arm64-emulated`). Their latency is labelled emulated "
                                 "like device: emulated; a board that says it is emulated while this is false "
                                 "fails the target, so emulated numbers never pass for a real core's.")
    device_cache_dir: Path | None = Field(None, description="device: emulated: where the prepared device lives "
                                          "(default $EDGECRAFT_DEVICE_CACHE or ~/.cache/edgecraft/devices).")

    @field_validator("mattr")
    @classmethod
    def _features(cls, value: list[str]) -> list[str]:
        return _check_features(value)

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9.+-]*", value):
            raise ValueError(f"{value!r} is not an LLVM CPU name (lower case, e.g. cortex-a72)")
        return value

    @model_validator(mode="after")
    def _device_fields(self) -> AArch64Options:
        if self.device == "rpc" and not self.rpc_host:
            raise ValueError("device: rpc needs rpc_host (the board running `python -m tvm.exec.rpc_server`)")
        if self.device == "tracker" and not (self.tracker_host and self.tracker_key):
            raise ValueError("device: tracker needs tracker_host and tracker_key")
        if self.device != "rpc" and self.rpc_host:
            raise ValueError(f"rpc_host is set but device is {self.device!r}; set device: rpc")
        if self.device != "tracker" and (self.tracker_host or self.tracker_key):
            raise ValueError(f"tracker_host/tracker_key are set but device is {self.device!r}; set device: tracker")
        if self.board_emulated and self.device == "emulated":
            raise ValueError("board_emulated is for device: rpc or tracker (device: emulated is emulated already)")
        if self.tuning is not None and self.device == "emulated":
            raise ValueError("tuning on the emulated device is pointless (it would tune for QEMU, not an ARM "
                             "core): tune tvm-llvm-host, or a real board (device: rpc or tracker)")
        return self


def _check_features(value: list[str]) -> list[str]:
    for feature in value:
        if not _FEATURE.match(feature):
            raise ValueError(f"{feature!r} is not an LLVM feature: write '+name' to enable or '-name' to "
                             "disable, e.g. '+dotprod'")
    return value
