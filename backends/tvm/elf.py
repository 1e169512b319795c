"""Read the architecture of an ELF shared object from its header.

Hand-written (20 lines) because the check needs only ``e_machine`` and the obvious tools (``file``,
pyelftools) are not dependencies of edgecraft. Used to prove that an aarch64 artifact really is one.
"""

from __future__ import annotations

import struct
from pathlib import Path

#: ``e_machine`` values (ELF specification / Linux ``elf-em.h``) edgecraft names in reports.
MACHINES = {3: "x86", 40: "arm", 62: "x86_64", 183: "aarch64", 243: "riscv"}


def elf_machine(path: Path) -> str | None:
    """The architecture of the ELF file at ``path`` (e.g. ``"aarch64"``), or None if it is no ELF."""
    with open(path, "rb") as f:
        header = f.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    order = "<" if header[5] == 1 else ">"  # EI_DATA: 1 little-endian, 2 big-endian
    (machine,) = struct.unpack(order + "H", header[18:20])
    return MACHINES.get(machine, f"e_machine={machine}")
