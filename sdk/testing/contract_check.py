"""The conformance checks of a contract kind: its class attributes and contract model, ``describe()``,
``check_plan()``, and ``judge()`` in a real run (the kit's CNN, uncompressed, on ``ort-cpu``): exactly one
verdict for the contract, a valid Verdict whose ``passed`` agrees with its ``status``, finite ``measured``
and ``bound``, and the same verdict when the run is judged again (measures other than latency and memory,
which are noisy by nature).

:func:`kit_run` (shared with the integration check) runs the kit's plan without calling any lifecycle hook.
"""

from __future__ import annotations

import copy
import math
import typing
from pathlib import Path
from typing import Any

from edgecraft.errors import EdgecraftError, InputError
from edgecraft.testing.findings import ConformanceReport, attempt
from edgecraft.testing.source_check import params_for

#: The contract the integration check's run judges (always measurable, always passes).
SIZE_CONTRACT = {"kind": "size", "max_bytes": 10**9, "name": "kit size"}


def kit_run(registry: Any, contracts: list[dict[str, Any]], work: Path, *, metrics: list[str] | None = None) -> Any:
    """Run the kit's plan (the CNN, no step, dataset ``kit``, ``ort-cpu``) with ``contracts``; the Report.

    Lifecycle hooks are not called (``notify`` is silenced on a shallow copy of ``registry``): the checks call
    the hooks under test themselves, with copies of what a run passes."""
    from edgecraft.runner import run_plan
    from edgecraft.testing.harness import kit_plan
    from edgecraft.testing.models import CNN

    work.mkdir(parents=True, exist_ok=True)
    plan = kit_plan("none", {}, CNN, work, ["ort-cpu"], {})
    plan["name"] = "conformance-kit"
    plan["steps"] = []
    plan["contracts"] = contracts
    plan["evaluation"]["metrics"] = metrics or ["top1"]
    quiet = copy.copy(registry)
    quiet.notify = lambda *args, **kwargs: None
    return run_plan(plan, quiet, base_dir=work, cache_dir=work / "cache")


class ContractKindCheck:
    def __init__(self, registry: Any, name: str, params: dict[str, Any], work: Path) -> None:
        provided = registry.contract_kinds[name]
        self.registry, self.cls, self.name, self.params, self.work = registry, provided.obj, name, params, work
        self.report = ConformanceReport("contract kind", name, str(provided.provenance))

    def run(self) -> ConformanceReport:
        from edgecraft.verify.judging import Measure
        from pydantic import BaseModel

        r = self.report
        measures = typing.get_args(Measure)
        if getattr(self.cls, "measures", None) not in measures:
            r.add("violation", "measures", f"is {getattr(self.cls, 'measures', None)!r}; expected one of {measures}")
            return r
        contract = params_for(r, type("Kind", (), {"params_model": self.cls.model}), BaseModel, self.name,
                              self.params, "pydantic.BaseModel")
        if contract is None:
            return r
        kind = self.cls()
        ok, text = attempt(r, "describe()", "", lambda: kind.describe(contract))
        if not ok:
            return r
        if not isinstance(text, str) or not text.strip():
            r.add("violation", "describe()", f"returned {text!r}; expected the verdict's non-empty name")
            return r
        ok, metric = attempt(r, "metric()", "", lambda: kind.metric(contract))
        if not ok:
            return r
        if metric is not None and metric not in self.registry.metrics:
            r.add("violation", "metric()", f"returned {metric!r}, which no installed plugin registers; expected "
                  f"None or a metric name ({', '.join(sorted(self.registry.metrics))})")
            return r
        first = self._judged(contract, text, metric, "first run")
        if first is None or self.cls.measures in ("latency", "memory"):
            return r
        second = self._judged(contract, text, metric, "second run")
        if second is not None:
            if (first.status, first.measured, first.bound) != (second.status, second.measured, second.bound):
                r.add("violation", "judge()", f"judged the same measurements {first.status} ({first.measured}) then "
                      f"{second.status} ({second.measured}); expected the same verdict")
            else:
                r.add("ok", "judge()", "the same verdict when judged again")
        return r

    def _judged(self, contract: Any, name: str, metric: str | None, where: str) -> Any:
        from edgecraft.verify.contracts import Verdict

        r = self.report
        raw = contract.model_dump(mode="json", exclude_none=True)
        ladder = ((InputError, "refused", lambda exc: f"the kit's plan cannot measure it: {exc.message}"),
                  (EdgecraftError, "violation", lambda exc: exc.message),
                  (Exception, "violation", lambda exc: f"raised {type(exc).__name__}: {exc}"))
        ok, report = attempt(r, "judge()", f"{where} (the kit's CNN on ort-cpu)",
                             lambda: kit_run(self.registry, [raw], self.work / where.replace(" ", "-"),
                                             metrics=[metric] if metric else None), ladder)
        if not ok:
            return None
        verdicts = [v for t in report.targets for v in t.contracts if v.origin == "contract"]
        mine = [v for v in verdicts if v.name == name]
        if len(mine) != 1:
            r.add("violation", "judge()", f"{where}: {len(mine)} verdict(s) named {name!r} (the name describe() "
                  f"gives) among {[v.name for v in verdicts]}; expected exactly one per contract and target")
            return None
        verdict = mine[0]
        if not isinstance(verdict, Verdict):
            r.add("violation", "judge()", f"{where}: returned {type(verdict).__name__}; expected a Verdict")
            return None
        if verdict.passed != (verdict.status == "pass"):
            r.add("violation", "judge()", f"{where}: passed={verdict.passed} but status={verdict.status!r}; expected "
                  "passed exactly when status is 'pass'")
            return None
        bad = [f for f in ("measured", "bound") if not math.isfinite(getattr(verdict, f))]
        if bad:
            r.add("violation", "judge()", f"{where}: {', '.join(bad)} not finite ({verdict.measured}, "
                  f"{verdict.bound}); expected numbers the report can hold")
            return None
        r.add("ok", "judge()", f"{where}: {verdict.status}: {verdict.detail}")
        return verdict
