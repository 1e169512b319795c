"""Find the external tools the TVM targets need, or say exactly how to install them.

A missing tool is the user's environment to fix, so it is an :class:`InputError` (exit code 2) raised at
compile time with the ``apt-get`` command that installs it (Debian/Ubuntu package names).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil

from edgecraft.boards import tool_version as tool_version  # `tool --version`'s first line: part of the cache key
from edgecraft.errors import InputError

CROSS_CXX = "aarch64-linux-gnu-g++"
QEMU = "qemu-aarch64-static"
TVM_INSTALL_HINT = "pip install 'edgecraft[tvm]'  (installs apache-tvm and apache-tvm-ffi==0.1.14.post1)"
#: apache-tvm-ffi 0.1.15.x segfaults as MetaSchedule tuning starts (in ToJSONGraph); this one works.
TUNING_FFI_VERSION = "0.1.14.post1"

#: tool -> the Debian package that provides it
APT_PACKAGES = {
    CROSS_CXX: "g++-aarch64-linux-gnu",
    QEMU: "qemu-user-static",
    "debootstrap": "debootstrap",
    "dpkg-deb": "dpkg",
}


def apt_hint(*tools: str) -> str:
    packages = " ".join(dict.fromkeys(APT_PACKAGES[t] for t in tools))
    return f"sudo apt-get update && sudo apt-get install -y {packages}"


def require_tool(tool: str, purpose: str) -> str:
    """Absolute path of ``tool`` on PATH, or an InputError with the apt-get command that installs it."""
    path = shutil.which(tool)
    if path is None:
        raise InputError(f"{purpose} needs `{tool}`, which is not on PATH", hint=apt_hint(tool))
    return path


def require_tvm(target: str) -> None:
    """InputError with the pip command if the ``tvm`` extra is not installed."""
    for module in ("tvm", "tvm_ffi"):
        if importlib.util.find_spec(module) is None:
            raise InputError(f"target {target!r} needs Apache TVM (python module {module!r} is not installed)",
                             hint=TVM_INSTALL_HINT)


def dist_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


