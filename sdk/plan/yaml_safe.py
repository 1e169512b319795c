"""Read plan files defensively: size limit, alias-expansion limit, duplicate keys, not-a-text-file.

A plan is a release gate's input, so a plan that parses to something other than what its author
reads must be an error:

- **duplicate keys**: YAML and JSON loaders keep the last of two equal keys, so a second
  ``contracts:`` block or a repeated ``max_drop`` silently deletes a failing contract. Every
  mapping is checked; the error names the key and both lines.
- **alias bombs**: a 1 KB YAML file with nested anchors ("billion laughs") describes gigabytes once
  expanded. The composed node graph is measured with aliases expanded (memoized, so the check
  itself costs the size of the file, not of the expansion) and refused above a limit.
- **size**: plan files above :data:`MAX_PLAN_BYTES` are refused before they are read.
- **not a plan file**: a directory, a binary file or unreadable file is one message, not a traceback.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml
from edgecraft.errors import InputError, PlanValidationError
from edgecraft.safe_text import bounded_repr, clean_text

#: A plan is a few kilobytes; a megabyte leaves room for inline data without inviting abuse.
DEFAULT_MAX_PLAN_BYTES = 1 << 20
#: Read at import for the documented name; :func:`max_plan_bytes` re-reads the environment and checks it.
MAX_PLAN_BYTES = DEFAULT_MAX_PLAN_BYTES


def max_plan_bytes() -> int:
    """``$EDGECRAFT_MAX_PLAN_BYTES`` (a positive integer) or 1 MiB; anything else is exit 2 naming the variable."""
    raw = os.environ.get("EDGECRAFT_MAX_PLAN_BYTES")
    if raw is None or raw.strip() == "":
        return MAX_PLAN_BYTES
    try:
        value = int(raw.strip())
    except ValueError:
        value = 0
    if value <= 0:
        raise InputError(f"EDGECRAFT_MAX_PLAN_BYTES = {bounded_repr(raw, 40)}: expected a positive number of bytes "
                         f"(default {DEFAULT_MAX_PLAN_BYTES})")
    return value
#: Nodes of the plan with every alias expanded. Real plans have hundreds.
MAX_PLAN_NODES = 100_000


class DuplicateKeyError(PlanValidationError):
    """Two equal keys in one mapping of a plan (exit code 2)."""


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader, but a mapping with a repeated key is an error naming the key and both lines.

    Merge keys (``<<: *defaults``) keep their YAML meaning: an explicit key overriding a merged one is
    not a duplicate, two explicit keys are.
    """

    source = "plan"

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, str] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                raise PlanValidationError(f"{self.source}:{key_node.start_mark.line + 1}: a mapping key must be "
                                          f"a plain value, not {type(key).__name__}") from None
            mark = key_node.start_mark
            line = f"line {mark.line + 1} column {mark.column + 1}"
            if first is not None:
                raise DuplicateKeyError(
                    f"{self.source}:{mark.line + 1}: duplicate key {bounded_repr(key, 40)} (first at {first}, again "
                    f"at {line}); the loader would keep only the last one",
                    hint="remove or merge one of them (two contracts go in one list)")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _expanded_size(root: yaml.Node, source: str) -> int:
    """Node count of ``root`` with aliases expanded; raises above MAX_PLAN_NODES or on a recursive alias."""
    memo: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        ident = id(node)
        if ident in memo:
            return memo[ident]
        if ident in active:
            raise PlanValidationError(f"{source}:{node.start_mark.line + 1}: a YAML alias refers to a node that "
                                      "contains it (a recursive structure)")
        active.add(ident)
        total = 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                total += size(key) + size(value)
                if total > MAX_PLAN_NODES:
                    break
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                total += size(item)
                if total > MAX_PLAN_NODES:
                    break
        active.discard(ident)
        memo[ident] = total
        return total

    total = size(root)
    if total > MAX_PLAN_NODES:
        raise PlanValidationError(f"{source}: the plan expands to more than {MAX_PLAN_NODES} values once YAML "
                                  "aliases are resolved (an alias bomb?); refused before building it")
    return total


def read_plan_text(path: Path) -> str:
    """The plan file's text; a bad path (missing, a directory, too large, binary) is an InputError."""
    if not path.exists():
        raise InputError(f"plan file {path} does not exist")
    if path.is_dir():
        raise InputError(f"plan file {path} is a directory, not a .yaml/.yml/.json file")
    if not path.is_file():  # a FIFO, a socket, a device: reading it could block for ever
        raise InputError(f"plan file {path} is not a regular file (a pipe, socket or device); write the plan to "
                         "a .yaml/.yml/.json file")
    limit = max_plan_bytes()
    try:
        size = path.stat().st_size
        if size > limit:
            raise InputError(f"plan file {path} is {size} bytes; plans are limited to {limit} bytes",
                             hint="keep data in dataset files, not inline (or raise EDGECRAFT_MAX_PLAN_BYTES)")
        with path.open("rb") as handle:
            raw = handle.read(limit + 1)
    except OSError as exc:
        raise InputError(f"plan file {path}: cannot read it: {exc.strerror or exc}") from exc
    if len(raw) > limit:
        raise InputError(f"plan file {path} is larger than {limit} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"plan file {path} is not UTF-8 text (byte {exc.start}: a binary file?)") from exc
    if "\x00" in text:
        raise InputError(f"plan file {path} holds NUL bytes: a binary file, not a plan")
    return text


def load_yaml_text(text: str, source: str) -> Any:
    """Parse YAML with the checks above; malformed YAML is a PlanValidationError with line and column."""
    loader = UniqueKeyLoader(text)
    loader.source = source
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, source)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise PlanValidationError(f"{where}: malformed YAML: {clean_text(problem)}") from exc
    except RecursionError:
        raise PlanValidationError(f"{source}: the plan is nested too deeply to be a plan") from None
    finally:
        loader.dispose()


class _DuplicateJsonKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateJsonKey(key)
        out[key] = value
    return out


def load_json_text(text: str, source: str) -> Any:
    """Parse JSON refusing duplicate keys; the lines are found by re-reading the text as YAML when it can."""
    try:
        return json.loads(text, object_pairs_hook=_unique_pairs)
    except json.JSONDecodeError as exc:
        raise PlanValidationError(f"{source}:{exc.lineno}:{exc.colno}: malformed JSON: {exc.msg}") from exc
    except RecursionError:
        raise PlanValidationError(f"{source}: the plan is nested too deeply to be a plan") from None
    except _DuplicateJsonKey as dup:
        try:  # JSON is (nearly) YAML: the YAML loader knows where each key is
            load_yaml_text(text, source)
        except DuplicateKeyError:
            raise
        except Exception:  # only used to locate the lines
            pass
        raise DuplicateKeyError(f"{source}: duplicate key {bounded_repr(dup.key, 40)} in one JSON object; JSON "
                                "loaders keep only the last one", hint="remove or merge one of them") from None
