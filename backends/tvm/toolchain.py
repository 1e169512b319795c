"""Find the external tools the TVM targets need, or say exactly how to install them.

A missing tool is the user's environment to fix, so it is an :class:`InputError` (exit code 2) raised at
compile time with the ``apt-get`` command that installs it (Debian/Ubuntu package names).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util

# The board service owns the cross toolchain: its tool names, the apt packages that provide them, and their versions
# (`tool --version`'s first line is part of the cache key).
from edgecraft.boards import CROSS_CXX as CROSS_CXX
from edgecraft.boards import QEMU as QEMU
from edgecraft.boards import apt_hint as apt_hint
from edgecraft.boards import require_tool as require_tool
from edgecraft.boards import tool_version as tool_version
from edgecraft.errors import InputError

TVM_INSTALL_HINT = "pip install 'edgecraft[tvm]'  (installs apache-tvm and apache-tvm-ffi==0.1.14.post1)"
#: apache-tvm-ffi 0.1.15.x segfaults as MetaSchedule tuning starts (in ToJSONGraph); this one works.
TUNING_FFI_VERSION = "0.1.14.post1"


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


