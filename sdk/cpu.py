"""The local CPU's features that change what compressed models do: the one place edgecraft reads them.

Int8 and bf16 speed (and, for OpenVINO, the precision a model really runs in) depend on a few x86
instruction-set extensions. Every decision and every record of them (the ONNX Runtime quantizer's
``reduce_range``, the precision OpenVINO reports, the benchmarks' JSON, the test suite's header)
reads them here, from the Linux ``/proc/cpuinfo`` flags:

* int8 dot products: ``avx512_vnni`` (AVX-512 VNNI), ``avx_vnni`` (AVX-VNNI), ``amx_int8`` (AMX);
* bf16 compute: ``avx512_bf16`` (AVX-512 BF16), ``amx_bf16`` (AMX).

Elsewhere (macOS, Windows, an unreadable file) no flag is known and every answer is "no", which is
the conservative choice for each caller.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path
from typing import TypedDict

CPUINFO = Path("/proc/cpuinfo")

#: Flags giving int8 dot-product instructions, in the order they are reported.
INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
#: Flags giving bf16 compute.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
#: Every flag edgecraft records.
FEATURE_FLAGS = (*INT8_FLAGS, *BF16_FLAGS)


def parse_flags(cpuinfo_text: str) -> frozenset[str]:
    """The feature flags of the first processor in a ``/proc/cpuinfo`` text (x86 ``flags`` or ARM ``Features``)."""
    for line in cpuinfo_text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def parse_model_name(cpuinfo_text: str) -> str:
    for line in cpuinfo_text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("model name", "Model", "Hardware"):
            return value.strip()
    return platform.processor() or platform.machine() or "unknown CPU"


@functools.cache
def _cpuinfo() -> str:
    try:
        return CPUINFO.read_text(errors="replace")
    except OSError:
        return ""


def cpu_flags(cpuinfo_text: str | None = None) -> frozenset[str]:
    """All feature flags of this CPU (or of ``cpuinfo_text``); empty when they cannot be read."""
    return parse_flags(_cpuinfo() if cpuinfo_text is None else cpuinfo_text)


def int8_features(cpuinfo_text: str | None = None) -> list[str]:
    """The int8 dot-product extensions present (a subset of :data:`INT8_FLAGS`), e.g. ``['avx512_vnni']``."""
    flags = cpu_flags(cpuinfo_text)
    return [f for f in INT8_FLAGS if f in flags]


def bf16_features(cpuinfo_text: str | None = None) -> list[str]:
    """The bf16 compute extensions present (a subset of :data:`BF16_FLAGS`)."""
    flags = cpu_flags(cpuinfo_text)
    return [f for f in BF16_FLAGS if f in flags]


def has_vnni(cpuinfo_text: str | None = None) -> bool:
    """True with AVX-512 VNNI or AVX-VNNI: u8×s8 products accumulate in int32 without saturating, so the
    ONNX Runtime quantizer needs no ``reduce_range``. (AMX alone is never without one of them.)"""
    flags = cpu_flags(cpuinfo_text)
    return "avx512_vnni" in flags or "avx_vnni" in flags


def has_bf16(cpuinfo_text: str | None = None) -> bool:
    """True when the CPU computes in bf16 natively (AVX-512 BF16 or AMX-BF16): only then does OpenVINO's
    CPU plugin run a model in bf16; elsewhere it silently keeps f32."""
    return bool(bf16_features(cpuinfo_text))


class CpuSummary(TypedDict):
    """What :func:`cpu_summary` records (a plain dict at run time: it goes into JSON files as it is)."""

    model: str
    machine: str
    cores: int | None
    int8: list[str]
    bf16: list[str]
    avx512f: bool
    avx2: bool


def cpu_summary(cpuinfo_text: str | None = None) -> CpuSummary:
    """What benchmarks and reports record about the CPU: its name, core count and the relevant features."""
    import os

    text = _cpuinfo() if cpuinfo_text is None else cpuinfo_text
    return {
        "model": parse_model_name(text),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "int8": int8_features(text),
        "bf16": bf16_features(text),
        "avx512f": "avx512f" in cpu_flags(text),
        "avx2": "avx2" in cpu_flags(text),
    }


def describe(cpuinfo_text: str | None = None) -> str:
    """One line for logs and the test suite's header, e.g.
    ``Intel Xeon (2 cores, x86_64): int8 avx512_vnni, avx_vnni; bf16 none; AVX-512``."""
    s = cpu_summary(cpuinfo_text)
    int8 = ", ".join(s["int8"]) or "none (no VNNI/AMX)"
    bf16 = ", ".join(s["bf16"]) or "none (f32 only)"
    vector = "AVX-512" if s["avx512f"] else "AVX2" if s["avx2"] else "no AVX2"
    return f"{s['model']} ({s['cores']} cores, {s['machine']}, {vector}): int8 {int8}; bf16 {bf16}"


#: ``/proc/sys/kernel/arch`` names the running kernel's architecture (Linux 6.1+).
KERNEL_ARCH = Path("/proc/sys/kernel/arch")
_ARM = ("aarch64", "arm64", "armv7l", "armv8l")


def user_mode_emulation(machine: str | None = None, kernel_arch: str | None = None,
                        cpuinfo_text: str | None = None) -> str | None:
    """Why this process runs emulated (an ARM program on an x86 kernel: QEMU user-mode, with or without
    binfmt_misc), or None on its own CPU. Its timings are then QEMU's and say nothing about an ARM core.

    Read from the kernel, not from what QEMU shows the program (``platform.machine()`` says aarch64 under
    QEMU): the kernel's architecture (``/proc/sys/kernel/arch``) or, on older kernels, an x86 ``/proc/cpuinfo``
    (QEMU 7.2 passes the host's file through; ``vendor_id`` and x86 ``flags`` never appear on an ARM kernel).
    """
    machine = (machine or platform.machine()).lower()
    if machine not in _ARM:
        return None
    if kernel_arch is None:
        try:
            kernel_arch = KERNEL_ARCH.read_text().strip()
        except OSError:
            kernel_arch = ""
    if kernel_arch and kernel_arch.lower() not in _ARM:
        return f"this {machine} process runs on a {kernel_arch} kernel (user-mode emulation, e.g. QEMU)"
    text = _cpuinfo() if cpuinfo_text is None else cpuinfo_text
    if not kernel_arch and any(line.startswith("vendor_id") for line in text.splitlines()):
        return f"this {machine} process sees an x86 /proc/cpuinfo (user-mode emulation, e.g. QEMU)"
    return None


__all__ = ["BF16_FLAGS", "FEATURE_FLAGS", "INT8_FLAGS", "CpuSummary", "bf16_features", "cpu_flags", "cpu_summary",
           "describe", "has_bf16", "has_vnni", "int8_features", "parse_flags",
           "user_mode_emulation"]
