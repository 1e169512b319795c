"""The numbers a plan holds: finite, and numbers as written (never a boolean or a quoted string).

Why: a release gate's bound that cannot fail is worse than none. YAML reads ``.inf`` and ``1e400`` as
infinity, JSON parsers accept ``Infinity``, and pydantic's lax mode reads ``true`` as 1 and ``"inf"`` as
infinity: ``max_ms: .inf`` or ``max_drop: true`` would be accepted and pass every run. Every number of the
core's plan sections is typed with :data:`FiniteFloat` or :data:`PlanInt`, so such a plan is exit 2 naming
the field. pydantic's ``allow_inf_nan=False`` does the finiteness; a before-validator refuses booleans and
text (pydantic's strict mode would also refuse ``1.0`` for an integer and nested mappings for models, which
plans legitimately hold). The JSON schema marks these numbers ``"x-finite": true``.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator, AllowInfNan, BeforeValidator, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema


def _a_number(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"expected a finite number, got the boolean {value!r} (write a number)")
    if isinstance(value, str | bytes):
        raise ValueError(f"expected a finite number, got the text {value[:40]!r} (write the number unquoted)")
    return value


class _FiniteInSchema:
    """Says in the JSON schema that the number is finite (JSON has no infinity, YAML has: ``.inf``)."""

    def __get_pydantic_json_schema__(self, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema["x-finite"] = True
        return schema


#: A float that is finite and was written as a number.
FiniteFloat = Annotated[float, AllowInfNan(False), BeforeValidator(_a_number), _FiniteInSchema()]
#: An integer that was written as a number (``true`` and ``"3"`` are refused; ``3.0`` is 3).
PlanInt = Annotated[int, BeforeValidator(_a_number), _FiniteInSchema()]

#: Hard caps of the plan's budgets (whatever a plan says, no run waits longer than these).
MAX_GATE_BUDGET_S = 3600.0  # gate.time_budget_s: one hour of extra measuring per target
MAX_PLACEMENT_TIMEOUT_S = 86_400.0  # targets[].placement.timeout_s: one day waiting for a node
MAX_SEARCH_BUDGET_S = 7 * 86_400.0  # search.time_budget_s: one week
MAX_CALLS = 1_000_000  # latency.max_calls / min_calls / warmup / repeats: timed calls per model per round
MAX_ROUNDS = 10_000  # latency.rounds


def _printable(value: str) -> str:
    bad = sorted({f"U+{ord(c):04X}" for c in value if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")})
    if bad:
        raise ValueError(f"names appear in logs, Markdown, HTML and JUnit reports; control and bidirectional "
                         f"characters ({', '.join(bad[:5])}) could forge or reverse their text: use printable "
                         "characters")
    return value


#: A name the reports print (a plan, step, target entry or contract): no newline, no U+202E.
Label = Annotated[str, AfterValidator(_printable)]
