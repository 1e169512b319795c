"""The conformance checks of a contract kind: its class attributes and contract model, ``describe()``,
``metric()``, and ``judge()`` on what a real run measured (the kit's CNN, uncompressed, on ``ort-cpu``:
metrics, sizes and MACs of both sides): a valid Verdict named as ``describe()`` says, whose ``passed`` agrees
with its ``status``, finite ``measured`` and ``bound``, the same verdict when judged again, and the
measurements left untouched (every contract of the target reads the same ones).

Latency and memory kinds are judged on interleaved rounds and repeated child processes, which only a run
produces: for those the kit checks everything but ``judge()``. A plan naming the kind is validated as a user's
would be (the plan keeps a plugin kind's fields until binding checks them with the kind's ``model``); a
refusal there is reported as a note.

:func:`kit_run` (shared with the integration check) runs the kit's plan without calling any lifecycle hook.
"""

from __future__ import annotations

import copy
import math
import typing
from pathlib import Path
from typing import Any

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
    quiet.notify = lambda *args, **kwargs: []
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
        if self.cls.measures in ("latency", "memory"):
            r.add("skipped", "judge()", f"measures {self.cls.measures}, which only a run's interleaved rounds or "
                  "child processes give; judge it in a plan")
            return r
        measured = self._measured(metric)
        if measured is None:
            return r
        self._note_plan(contract)
        before = copy.deepcopy((measured.metrics, measured.size_bytes, measured.compute))
        first = self._judge(kind, contract, text, measured, "first call")
        if first is None:
            return r
        second = self._judge(kind, contract, text, measured, "second call")
        if second is not None and (first.status, first.measured, first.bound) != (second.status, second.measured,
                                                                                    second.bound):
            r.add("violation", "judge()", f"judged the same measurements {first.status} ({first.measured}) then "
                  f"{second.status} ({second.measured}); expected the same verdict")
            return r
        if (measured.metrics, measured.size_bytes, measured.compute) != before:
            r.add("violation", "judge()", "edited the measurements it judged; expected them untouched (every "
                  "contract of the target reads the same ones)")
            return r
        r.add("ok", "judge()", f"{first.status}: {first.detail}; the same when judged again, measurements untouched")
        return r

    def _measured(self, metric: str | None) -> Any:
        """What the kit's run measured on ort-cpu, as judges read it (metrics, sizes, MACs of both sides)."""
        from edgecraft.plan.loading import validate_plan
        from edgecraft.testing.harness import kit_plan
        from edgecraft.testing.models import CNN
        from edgecraft.verify.gate import BASELINE, COMPRESSED
        from edgecraft.verify.judging import Measured

        metrics = [metric] if metric else ["top1"]
        ok, report = attempt(self.report, "judge()", "the kit's run (the CNN on ort-cpu)",
                             lambda: kit_run(self.registry, [dict(SIZE_CONTRACT)], self.work / "run", metrics=metrics))
        if not ok:
            return None
        target = report.targets[0]
        raw = kit_plan("none", {}, CNN, self.work / "run", ["ort-cpu"], {})
        raw.update(steps=[], contracts=[dict(SIZE_CONTRACT)])
        raw["evaluation"]["metrics"] = metrics
        plan = validate_plan(raw, self.registry)
        sides = {BASELINE: target.baseline, COMPRESSED: target.compressed}
        return Measured(plan, target.target, target.emulated, self.registry.metric,
                        metrics={side: dict(m.metrics) for side, m in sides.items()},
                        size_bytes={side: m.size_bytes for side, m in sides.items()},
                        compute={side: m.compute for side, m in sides.items()})

    def _note_plan(self, contract: Any) -> None:
        from edgecraft.errors import InputError
        from edgecraft.plan.loading import validate_plan
        from edgecraft.testing.harness import kit_plan
        from edgecraft.testing.models import CNN

        raw = kit_plan("none", {}, CNN, self.work / "run", ["ort-cpu"], {})
        raw.update(steps=[], contracts=[contract.model_dump(mode="json", exclude_none=True)])
        try:
            validate_plan(raw, self.registry)
        except InputError as exc:
            self.report.add("note", "plan", f"a plan naming this kind is refused: {exc.message}")

    def _judge(self, kind: Any, contract: Any, name: str, measured: Any, where: str) -> Any:
        from edgecraft.verify.contracts import Verdict

        r = self.report
        ok, verdict = attempt(r, "judge()", where, lambda: kind.judge(contract, measured))
        if not ok:
            return None
        if not isinstance(verdict, Verdict):
            r.add("violation", "judge()", f"{where}: returned {type(verdict).__name__}; expected an "
                  "edgecraft.verify.contracts.Verdict")
            return None
        if verdict.name != name:
            r.add("violation", "judge()", f"{where}: the verdict is named {verdict.name!r}; describe() says {name!r} "
                  "(reports and reference bounds match verdicts by name)")
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
        return verdict
