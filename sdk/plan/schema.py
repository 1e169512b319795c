"""JSON Schema of the plan, with each installed strategy's params and each target's options inlined.

Editors (VS Code's YAML extension, for one) use this to complete and check plans as they are typed.
It describes plan files, so it starts from the plan as written (:class:`~edgecraft.plan.raw.RawPlan`),
whose params/options are open; here they become a ``oneOf`` selected by the
``strategy``/``target`` name, built from the plugins' own pydantic models.
"""

from __future__ import annotations

from typing import Any

from edgecraft.plan.raw import RawPlan
from edgecraft.registry import Registry


def _inline(model_schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    for name, sub in model_schema.pop("$defs", {}).items():
        defs.setdefault(name, sub)
    return model_schema


def plan_json_schema(registry: Registry) -> dict[str, Any]:
    schema = RawPlan.model_json_schema(by_alias=True)
    defs = schema.setdefault("$defs", {})
    step_variants = []
    for name, provided in sorted(registry.strategies.items()):
        params = _inline(provided.obj.params_model.model_json_schema(ref_template="#/$defs/{model}"), defs)
        step_variants.append({
            "type": "object",
            "title": f"step: {name}",
            "description": provided.summary,
            "properties": {"strategy": {"const": name}, "name": {"type": ["string", "null"]}, "params": params},
            "required": ["strategy"],
            "additionalProperties": False,
        })
    target_variants = []
    for name, provided in sorted(registry.targets.items()):
        _, info = provided.obj
        options = _inline(info.options_model.model_json_schema(ref_template="#/$defs/{model}"), defs)
        target_variants.append({
            "type": "object",
            "title": f"target: {name}",
            "description": info.summary,
            "properties": {"target": {"const": name}, "name": {"type": ["string", "null"]}, "options": options},
            "required": ["target"],
            "additionalProperties": False,
        })
    source_variants = [_inline(p.obj.params_model.model_json_schema(ref_template="#/$defs/{model}"), defs)
                       for _, p in sorted(registry.model_sources.items())]
    if source_variants:
        schema["properties"]["model"] = {"oneOf": source_variants, "description": "The model source (by kind)."}
    dataset_variants = [_inline(p.obj.params_model.model_json_schema(ref_template="#/$defs/{model}"), defs)
                        for _, p in sorted(registry.dataset_kinds.items())]
    if dataset_variants:
        schema["properties"]["data"] = {"type": "object", "additionalProperties": {"oneOf": dataset_variants},
                                        "description": "Named datasets (by kind)."}
    if step_variants:
        schema["properties"]["steps"] = {"type": "array", "items": {"oneOf": step_variants}}
    if target_variants:
        schema["properties"]["targets"] = {"type": "array", "minItems": 1, "items": {
            "oneOf": [*target_variants, {"enum": sorted(registry.targets)}]}}
    schema["title"] = "CompressionPlan"  # what a plan file is, whichever model parses it
    schema["description"] = "What to do to a model, for which targets, and which contracts the result must meet."
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "edgecraft.plan/v1"
    return schema
