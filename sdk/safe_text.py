"""Text from users and plugins, made safe to show: bounded in size and free of control characters.

Two failure modes motivate this module. An error message built from ``json.dumps(value)`` of a
user value costs as much as the value: a 1 KB YAML "billion laughs" plan expands to gigabytes and
the message alone took minutes and gigabytes before it was cut to 80 characters. And a contract
name or plugin message holding control characters (ESC sequences, NUL, form feeds) rewrites the CI
terminal and makes the JUnit XML unparsable (XML 1.0 forbids most C0 characters even escaped).

:func:`bounded_repr` walks a value with a budget and never looks at more than the budget allows,
so its cost is bounded whatever the value. :func:`clean_text` is the one place every renderer
(terminal, JUnit, Markdown, HTML) sends user-controlled text through.
"""

from __future__ import annotations

import re
from typing import Any

#: C0 controls except tab and newline, DEL, and the C1 controls (terminals act on CSI = U+009B).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
#: Characters XML 1.0 cannot hold at all (besides the controls above): lone surrogates, U+FFFE/U+FFFF.
_NOT_XML = re.compile("[\ud800-\udfff\ufffe\uffff]")


def clean_text(text: object, *, keep_newlines: bool = True) -> str:
    """``text`` with control characters shown as ``\\xNN`` escapes (visible, harmless, XML-safe).

    Escaping rather than deleting keeps the fault visible in a report ("name\\x1b[2J" tells the user
    what their plan holds), while no terminal, XML parser or browser acts on it.
    """
    s = text if isinstance(text, str) else str(text)
    if not keep_newlines:
        s = s.replace("\r\n", " ").replace("\n", " ")
    s = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", s)
    return _NOT_XML.sub(lambda m: f"\\u{ord(m.group()):04x}", s)


def bounded_repr(value: Any, limit: int = 80) -> str:
    """A short, JSON-like description of ``value`` that costs O(limit) whatever the value holds.

    Containers are walked depth-first while the budget lasts; strings are cut before they are
    quoted; anything else goes through ``repr`` of a bounded object only (numbers, None, bools) or
    its type name. The result is at most ``limit`` characters plus a trailing ``…``.
    """
    parts: list[str] = []
    budget = [max(limit, 8)]

    def emit(text: str) -> bool:
        if budget[0] <= 0:
            return False
        parts.append(text[:budget[0]])
        budget[0] -= len(text)
        return budget[0] > 0

    def walk(node: Any, depth: int) -> bool:
        if isinstance(node, str):
            return emit(repr(node[:budget[0] + 2]))
        if node is None or isinstance(node, bool | int | float):
            text = repr(node) if not isinstance(node, int) or node.bit_length() < 200 else "<big int>"
            return emit(text)
        if isinstance(node, bytes | bytearray):
            return emit(f"<{len(node)} bytes>")
        if depth > 20:
            return emit("…")
        if isinstance(node, dict):
            if not emit("{"):
                return False
            for i, (key, item) in enumerate(node.items()):
                if (i and not emit(", ")) or not walk(key, depth + 1) or not emit(": ") or not walk(item, depth + 1):
                    return False
            return emit("}")
        if isinstance(node, list | tuple | set | frozenset):
            if not emit("["):
                return False
            for i, item in enumerate(node):
                if (i and not emit(", ")) or not walk(item, depth + 1):
                    return False
            return emit("]")
        return emit(f"<{type(node).__name__}>")

    complete = walk(value, 0)
    text = clean_text("".join(parts), keep_newlines=False)
    if not complete or len(text) > limit:
        return text[:limit] + "…"
    return text
