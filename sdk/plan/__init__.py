"""Stage 1, the plan, in two lives: as written (:class:`RawPlan`, ``raw``) and bound (:class:`CompressionPlan`,
``bound``), frozen and fully typed with the installed plugins' models by ``binding``. ``spec`` holds the core's
sections (contracts, evaluation, latency, gate, measure), ``sections`` the bases of the plugin-owned ones;
``loading`` reads files (``yaml_safe`` refusing duplicate keys and alias bombs), ``schema`` exports the
JSON Schema.

``from edgecraft.plan import CompressionPlan`` (and every other model of the plan) keeps working: the
models are re-exported here.
"""

from edgecraft.plan.bound import CompressionPlan, StepSpec, TargetSpec
from edgecraft.plan.raw import RawPlan, RawStep, RawTarget
from edgecraft.plan.sections import (
    DatasetParams,
    DTypeName,
    InputDecl,
    SourceParams,
    StrategyParams,
    StrictModel,
    TargetOptions,
)
from edgecraft.plan.spec import (
    PLAN_SCHEMA_ID,
    AccuracyContract,
    AnyContract,
    ComputeContract,
    Contract,
    EvaluationSpec,
    GateSpec,
    LatencyContract,
    LatencySpec,
    MeasureSpec,
    MemoryContract,
    Placement,
    PlanBase,
    ReferenceBounds,
    SizeContract,
)

__all__ = [
    "PLAN_SCHEMA_ID",
    "AccuracyContract",
    "AnyContract",
    "CompressionPlan",
    "ComputeContract",
    "Contract",
    "DTypeName",
    "DatasetParams",
    "EvaluationSpec",
    "GateSpec",
    "InputDecl",
    "LatencyContract",
    "LatencySpec",
    "MeasureSpec",
    "MemoryContract",
    "Placement",
    "PlanBase",
    "RawPlan",
    "RawStep",
    "RawTarget",
    "ReferenceBounds",
    "SizeContract",
    "SourceParams",
    "StepSpec",
    "StrategyParams",
    "StrictModel",
    "TargetOptions",
    "TargetSpec",
]
