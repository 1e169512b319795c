"""Plan errors that name the field, the value and what fits: ``plan.yaml: steps[1].params.ratio = 2: ...``.

Pydantic's own locations are reshaped here: a discriminated union's tag is dropped
(``data.test.digits.split`` becomes ``data.test.split``), an unknown key lists the keys accepted at that
place, a missing ``kind`` lists the kinds accepted, and a value is shown bounded (it may be an alias bomb).
Both of a plan's validations, the core's (:mod:`edgecraft.plan.loading`) and the plugins'
(:mod:`edgecraft.plan.binding`), report through :func:`format_validation_error`.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from edgecraft.plan.spec import PLUGIN_CONTRACT_TAG
from edgecraft.safe_text import bounded_repr
from pydantic import BaseModel, ValidationError


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(plan)"


def _strip_union_tags(loc: tuple[Any, ...], data: Any) -> tuple[Any, ...]:
    """Drop the tag pydantic inserts for a discriminated union (``data.test.digits.split`` → ``data.test.split``)."""
    cleaned: list[Any] = []
    node = data
    for part in loc:
        if (isinstance(node, dict) and isinstance(part, str) and part not in node and "kind" in node
                and part in (node["kind"], PLUGIN_CONTRACT_TAG)):
            continue
        cleaned.append(part)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
    return tuple(cleaned)


def _unwrap(annotation: Any) -> list[Any]:
    """The model classes an annotation may hold (through Optional, list, dict, Annotated, unions)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list, dict, tuple):
        found = []
        for arg in typing.get_args(annotation):
            found.extend(_unwrap(arg))
        return found
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _pick(candidates: list[type[BaseModel]], node: Any) -> list[type[BaseModel]]:
    """Narrow union members to the one whose ``kind`` default matches the data's ``kind``."""
    if len(candidates) > 1 and isinstance(node, dict) and "kind" in node:
        narrowed = [c for c in candidates
                    if "kind" in c.model_fields and c.model_fields["kind"].default == node["kind"]]
        return narrowed or candidates
    return candidates


def _model_at(model: type[BaseModel], loc: tuple[Any, ...], data: Any) -> type[BaseModel] | None:
    """The model class at ``loc`` (walking lists, dicts and ``kind``-tagged unions alongside the data)."""
    candidates, node = [model], data
    for part in loc:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            continue
        owners = [c for c in _pick(candidates, node) if part in c.model_fields]
        node = node.get(part) if isinstance(node, dict) else None
        if owners:
            candidates = _unwrap(owners[0].model_fields[part].annotation)
        # otherwise ``part`` is a key of a dict field: the candidates stay the dict's value types
    chosen = _pick(candidates, node)
    return chosen[0] if chosen else None


def _kinds_at(model: type[BaseModel], loc: tuple[Any, ...], data: Any) -> list[str]:
    """The ``kind`` values a union field at ``loc`` accepts (for "kind is missing" errors)."""
    if not loc:
        return []
    owner = _model_at(model, loc[:-1], data)
    key = loc[-1]
    if owner is None:
        return []
    field = owner.model_fields.get(key) if isinstance(key, str) else None
    if field is None:  # loc ends in a dict key or list index: the owner's field is the container
        owner = _model_at(model, loc[:-2], data) if len(loc) > 1 else None
        field = owner.model_fields.get(loc[-2]) if owner is not None and isinstance(loc[-2], str) else None
    if field is None:
        return []
    kinds = [c.model_fields["kind"].default for c in _unwrap(field.annotation) if "kind" in c.model_fields]
    fixed = [kind for kind in kinds if isinstance(kind, str)]
    # A member with a free ``kind`` (a plugin's contract) accepts the kinds plugins register.
    return fixed + (["a plugin's kind (`edgecraft list`)"] if len(fixed) < len(kinds) else [])


def format_validation_error(error: ValidationError, *, source: str, prefix: tuple[Any, ...] = (),
                            model: type[BaseModel] | None = None, data: Any = None) -> list[str]:
    """One line per error: ``source: path = value: problem (accepted: ...)``."""
    lines = []
    for err in error.errors(include_url=False):
        relative = _strip_union_tags(tuple(err["loc"]), data)
        loc = prefix + relative
        path = _format_loc(loc)
        message = err["msg"]
        value = err.get("input")
        if err["type"] == "extra_forbidden" and model is not None:
            owner = _model_at(model, relative[:-1], data)
            if owner is not None:
                message += f"; accepted keys here: {', '.join(sorted(owner.model_fields))}"
            value_text = ""
        elif err["type"] == "union_tag_not_found" and model is not None:
            kinds = _kinds_at(model, relative, data)
            message = f"`kind` is missing; accepted kinds: {', '.join(kinds)}" if kinds else message
            value_text = ""
        elif err["type"] == "missing":
            value_text = ""
        else:
            value_text = f" = {bounded_repr(value, 80)}"  # never the full value: it may be an alias bomb
        lines.append(f"{source}: {path}{value_text}: {message}")
    return lines
