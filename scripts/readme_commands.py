"""The README's two commands, read from between their marker comments, so CI runs what users read.

    <!-- command-1 -->
    ```bash
    pip install -e ".[openvino,reports]" && edgecraft run ...
    ```
    <!-- /command-1 -->

``python scripts/readme_commands.py [README.md] command-1`` prints one command (for scripts/newcomer-check).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
_BLOCK = re.compile(r"<!--\s*(?P<name>command-\d+)\s*-->\s*\n```(?:bash|sh|console)?\n(?P<body>.*?)\n```\s*\n"
                    r"<!--\s*/(?P=name)\s*-->", re.S)


def readme_commands(text: str) -> dict[str, str]:
    """``{"command-1": "...", "command-2": "..."}``: each marked block's shell text (continuation lines joined).

    Raises ValueError when a marker has no well-formed block (the check must not pass on a README
    that lost its markers) or a block holds more than one command.
    """
    found = {m["name"]: m["body"] for m in _BLOCK.finditer(text)}
    for name in re.findall(r"<!--\s*(command-\d+)\s*-->", text):
        if name not in found:
            raise ValueError(f"README: <!-- {name} --> is not followed by one ```bash block and <!-- /{name} -->")
    commands = {}
    for name, body in found.items():
        lines = [ln for ln in body.replace("\\\n", " ").splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        if len(lines) != 1:
            raise ValueError(f"README: the {name} block must hold exactly one command line, found {len(lines)}")
        commands[name] = " ".join(lines[0].split())
    return commands


def main(argv: list[str]) -> int:
    path, name = (Path(argv[0]), argv[1]) if len(argv) == 2 else (README, argv[0] if argv else "")
    try:
        commands = readme_commands(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"readme_commands: {exc}", file=sys.stderr)
        return 2
    if name not in commands:
        print(f"readme_commands: {path} has no <!-- {name} --> block (found: {sorted(commands)})", file=sys.stderr)
        return 2
    print(commands[name])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
