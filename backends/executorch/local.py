"""``executorch-aarch64`` with ``device: local``: the board runner compiled and run natively on a real ARM node.

A real board joins a run as a Ray node (docs/arm-boards.md) and the target is placed there. Why not the board's
executorch *Python* runtime: its binding (``executorch/extension/pybindings/_C``) links libtorch, libtorch_cpu
and libc10 (``readelf -d`` on the 1.5.1 aarch64 wheel), so a board would need torch's aarch64 build just to run a
``.pte``. The wheel also ships ExecuTorch's C++ runtime and headers, which need only libc and libstdc++: this
module compiles :file:`board_runner.cpp` (the emulated board's runner, same protocol) with the node's own C++
compiler against the node's executorch package, caches it by source, executorch version, compiler and machine,
and runs it as a native process. So the kernels and the clock are the board's.

On a node that is not ARM the session refuses with the placement hint. On a Ray node inside the emulated board
(an aarch64 process on an x86 kernel, :func:`edgecraft.cpu.user_mode_emulation`) it refuses too, naming why:
such a process cannot start a native aarch64 program (the x86 kernel needs binfmt_misc, which containers and CI
runners cannot register) and its "local" compiler would be the host's x86 one; ``device: emulated`` runs the same
runner under QEMU from the host instead.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import platform
import shutil
from pathlib import Path

from edgecraft.errors import InputError, RuntimeFailure

TARGET = "executorch-aarch64"
ARM = ("aarch64", "arm64")
INSTALL_HINT = ("on the board: pip install --no-deps executorch==1.5.1 (its C++ runtime and headers; the Python "
                "binding's torch is not needed) and a C++ compiler (sudo apt-get install g++)")


def require_local_board() -> str:
    """This node's machine, or a RuntimeFailure saying where the target must go."""
    from edgecraft.cpu import user_mode_emulation

    machine = platform.machine()
    if machine.lower() not in ARM:
        raise RuntimeFailure(f"{TARGET} with device: local runs on an ARM board, but this node is {machine} "
                             f"({platform.node()})",
                             hint="place the target on the board's Ray node: placement: {resources: "
                                  "{\"board:NAME\": 1}} (docs/arm-boards.md), or use device: emulated")
    emulation = user_mode_emulation()
    if emulation:
        raise RuntimeFailure(f"{TARGET} with device: local starts ExecuTorch's runner as a native program, and "
                             f"{emulation}: without binfmt_misc it cannot start aarch64 programs",
                             hint="use device: emulated (the same runner under QEMU, started from the host)")
    return machine


def executorch_package() -> Path:
    """The node's executorch package folder, with the C++ headers and libraries the runner needs."""
    spec = importlib.util.find_spec("executorch")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise InputError(f"target {TARGET!r} with device: local needs executorch on this board", hint=INSTALL_HINT)
    package = Path(locations[0])
    if not (package / "include" / "executorch" / "extension" / "module" / "module.h").is_file() or \
            not (package / "lib" / "libexecutorch.so").is_file():
        raise InputError(f"target {TARGET!r}: the executorch package in {package} has no C++ runtime "
                         "(include/ and lib/libexecutorch.so)", hint=INSTALL_HINT)
    return package


def compiler() -> str:
    """``$CXX``, else ``c++`` or ``g++`` on PATH."""
    for name in (os.environ.get("CXX"), "c++", "g++"):
        found = shutil.which(name) if name else None
        if found:
            return found
    raise InputError(f"target {TARGET!r} with device: local compiles its runner on the board, which has no C++ "
                     "compiler ($CXX, c++ or g++)", hint="sudo apt-get install g++")


def local_runner(cache_dir: Path | None = None) -> Path:
    """The runner for this node, compiled once per (source, executorch, compiler, machine) into the artifact
    cache's ``native`` folder; compiled to a temporary name and renamed, so concurrent first uses are safe."""
    from edgecraft.backends.executorch.board import DEFINES, SOURCE, compile_runner
    from edgecraft.boards import tool_version
    from edgecraft.settings import default_cache_dir

    package, cxx = executorch_package(), compiler()
    key = hashlib.sha256(b"\0".join([SOURCE.read_bytes(), executorch_version().encode(), tool_version(cxx).encode(),
                                     platform.machine().encode(), str(package).encode(),
                                     " ".join(DEFINES).encode()])).hexdigest()[:16]
    binary = (cache_dir or default_cache_dir()) / "native" / f"executorch-runner-{platform.machine()}-{key}"
    if binary.is_file():
        return binary
    lib = package / "lib"
    return compile_runner(cxx, package / "include", lib, str(lib), binary, "compiling the runner on this board")


def executorch_version() -> str:
    try:
        return importlib.metadata.version("executorch")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
