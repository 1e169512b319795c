"""Stage 1, the plan: the typed CompressionPlan (``spec``), loading and validating it from YAML/JSON
(``loading``, with ``yaml_safe`` refusing duplicate keys and alias bombs), and its JSON Schema (``schema``).

``from edgecraft.plan import CompressionPlan`` (and every other model of the plan) keeps working:
the spec's names are re-exported here.
"""

from edgecraft.plan.spec import (
    PLAN_SCHEMA_ID,
    AccuracyContract,
    AnyContract,
    CompressionPlan,
    ComputeContract,
    Contract,
    DatasetParams,
    DTypeName,
    EvaluationSpec,
    GateSpec,
    InputDecl,
    LatencyContract,
    LatencySpec,
    MeasureSpec,
    MemoryContract,
    Placement,
    ReferenceBounds,
    SizeContract,
    SourceParams,
    StepSpec,
    StrictModel,
    TargetSpec,
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
    "ReferenceBounds",
    "SizeContract",
    "SourceParams",
    "StepSpec",
    "StrictModel",
    "TargetSpec",
]
