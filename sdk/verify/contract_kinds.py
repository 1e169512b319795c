"""The built-in contract kinds: accuracy, latency, size, memory (peak memory) and compute.

Registered through the ``edgecraft`` entry-point group (``contracts``, :mod:`edgecraft.verify.contracts_plugin`)
exactly as a third party's kinds would be; the judging itself lives with the measurement it reads
(:mod:`edgecraft.verify.contracts`, :mod:`edgecraft.verify.gate`, :mod:`edgecraft.verify.resources`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgecraft.errors import CompileError, InputError
from edgecraft.plan import AccuracyContract, ComputeContract, LatencyContract, MemoryContract, SizeContract
from edgecraft.verify.contracts import Verdict, judge_accuracy, judge_size
from edgecraft.verify.gate import BASELINE, COMPRESSED, judge_latency_interval
from edgecraft.verify.judging import ContractKind, Measured
from edgecraft.verify.resources import judge_compute, judge_memory

if TYPE_CHECKING:
    from edgecraft.plan import CompressionPlan


class Accuracy(ContractKind[AccuracyContract]):
    kind = "accuracy"
    model = AccuracyContract
    measures = "metrics"
    summary = "at most max_drop of a metric lost vs the baseline, on the target"

    def metric(self, contract: AccuracyContract) -> str | None:
        return contract.metric

    def check_plan(self, contract: AccuracyContract, index: int, plan: CompressionPlan) -> None:
        if contract.metric not in plan.evaluation.metrics:
            raise InputError(f"contracts[{index}] ({contract.describe_bound()}) needs metric {contract.metric!r}, "
                             f"which is not in evaluation.metrics ({plan.evaluation.metrics})",
                             hint=f"add {contract.metric} to evaluation.metrics")

    def judge(self, contract: AccuracyContract, measured: Measured) -> Verdict:
        baseline = measured.metrics.get(BASELINE, {})
        if contract.metric not in baseline:
            raise InputError(f"contract {contract.describe_bound()!r} needs metric {contract.metric!r}; add "
                             f"it to evaluation.metrics (now {measured.plan.evaluation.metrics})")
        return judge_accuracy(contract, measured.metric(contract.metric), baseline,
                              measured.metrics.get(COMPRESSED, {}))


class Latency(ContractKind[LatencyContract]):
    kind = "latency"
    model = LatencyContract
    measures = "latency"
    settles = True
    summary = "a percentile ceiling in ms, or a minimum speedup vs the baseline, on a confidence interval"

    def check_target(self, contract: LatencyContract, label: str, *, emulated: bool) -> None:
        if emulated and not contract.allow_emulated:
            raise CompileError(
                f"a latency contract ({contract.describe_bound()}) cannot be judged on an emulated device: "
                "emulated timings say nothing about a real core", target=label,
                hint="run it on a real board (RPC options), or set allow_emulated: true on the contract "
                     "to accept a verdict labelled emulated")

    def judge(self, contract: LatencyContract, measured: Measured) -> Verdict:
        assert measured.timer is not None, "latency is judged on the interleaved rounds"
        return judge_latency_interval(contract, measured.timer, measured.plan.gate, emulated=measured.emulated,
                                      seed=measured.plan.latency.seed)


class Size(ContractKind[SizeContract]):
    kind = "size"
    model = SizeContract
    measures = "size"
    summary = "an artifact size ceiling in bytes, or a minimum size ratio vs the baseline"

    def judge(self, contract: SizeContract, measured: Measured) -> Verdict:
        return judge_size(contract, measured.size_bytes[BASELINE], measured.size_bytes[COMPRESSED])


class Memory(ContractKind[MemoryContract]):
    kind = "memory"
    model = MemoryContract
    measures = "memory"
    summary = "a peak-memory ceiling, or a minimum peak-memory ratio vs the baseline, on repeated children"

    def judge(self, contract: MemoryContract, measured: Measured) -> Verdict:
        return judge_memory(contract, measured.memory[BASELINE], measured.memory[COMPRESSED])


class Compute(ContractKind[ComputeContract]):
    kind = "compute"
    model = ComputeContract
    measures = "compute"
    summary = "a MACs ceiling (batch 1), or a minimum MAC ratio vs the baseline, counted on the ONNX graph"

    def judge(self, contract: ComputeContract, measured: Measured) -> Verdict:
        base, comp = measured.compute.get(BASELINE), measured.compute.get(COMPRESSED)
        if base is None or comp is None:
            raise InputError(f"contract {contract.describe_bound()!r} on target {measured.label!r}: the artifact has "
                             "no ONNX graph (lineage/model.onnx) to count MACs on")
        return judge_compute(contract, base, comp)


BUILTIN_KINDS: tuple[type[ContractKind[Any]], ...] = (Accuracy, Latency, Size, Memory, Compute)
