"""Accuracy on the target: the plan's evaluation data through a model loaded on the target's runtime.

One :class:`TargetEvaluator` per target of a run measures the baseline once (its outputs are the
reference for agreement metrics, its metrics the reference for accuracy contracts) and then any
candidate against it: the compressed artifact for the report, a throw-away model for an
accuracy-aware step (handed to strategies through their run context as an
:class:`~edgecraft.context.Evaluator`). Baseline and candidate go through the same data, batches and
metrics, on the runtime that ships.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from edgecraft.assembly.artifact_io import ArtifactIO
from edgecraft.assembly.artifacts import Artifact
from edgecraft.assembly.cache_verify import work_dir
from edgecraft.backend import Session
from edgecraft.datasets import Dataset, DatasetStore
from edgecraft.errors import InputError
from edgecraft.feeds import BoundData
from edgecraft.metrics import Metric
from edgecraft.modelio import ModelIO
from edgecraft.models import ModelHandle
from edgecraft.plan import CompressionPlan
from edgecraft.progress import NullProgress, Progress
from edgecraft.registry import Registry
from edgecraft.verify.measure import Outputs, check_finite, compute_metrics, run_outputs


@dataclass
class TargetEvaluator:
    """Metrics of models on one target, each against this target's baseline (see the module's docstring)."""

    plan: CompressionPlan
    registry: Registry
    label: str
    datasets: DatasetStore
    artifact_io: ArtifactIO
    #: The plan's model I/O: which output the metrics read.
    model_io: ModelIO
    progress: Progress = field(default_factory=NullProgress)
    #: Baseline outputs by baseline artifact key, shared by the runs of a search: the baseline is evaluated once
    #: per target, not once per trial (its latency is still timed in every run, interleaved with the candidate).
    baseline_memo: dict[str, Outputs] | None = None
    _baseline: Artifact | None = None
    _baseline_outputs: Outputs | None = None
    _baseline_metrics: dict[str, float] | None = None
    #: The baseline's outputs and metrics on other datasets (the calibration data an accuracy-aware step selects
    #: layers on, kept apart from the evaluation data the report judges: issue 26).
    _other_outputs: dict[str, Outputs] = field(default_factory=dict)
    _other_metrics: dict[str, dict[str, float]] = field(default_factory=dict)

    def use_baseline(self, artifact: Artifact) -> None:
        """The baseline artifact every candidate is compared with (built before any candidate is measured)."""
        self._baseline = artifact

    # ------------------------------------------------------------------ the plan's evaluation
    def eval_dataset(self) -> Dataset | None:
        name = self.plan.evaluation.dataset
        return None if name is None else self.datasets.get(name)

    def eval_data(self) -> BoundData | None:
        """The evaluation dataset as feeds for the plan's model."""
        name = self.plan.evaluation.dataset
        return None if name is None else self.datasets.bound(name)

    @property
    def metrics(self) -> list[Metric]:
        """The metric objects of ``evaluation.metrics``, in the plan's order."""
        return [self.registry.metric(m, where="evaluation.metrics") for m in self.plan.evaluation.metrics]

    @property
    def primary_output(self) -> str:
        io = self.model_io
        return io.output_names[io.output_index(self.plan.evaluation.output)] if io.outputs else "output0"

    # ------------------------------------------------------------------ measuring
    def _data(self, dataset: str | None) -> BoundData:
        data = self.eval_data() if dataset is None else self.datasets.bound(dataset)
        assert data is not None
        return data

    def mask(self, data: BoundData) -> np.ndarray | None:
        """``evaluation.mask_input``'s values for every sample of ``data`` (None when the plan names no mask)."""
        name = self.plan.evaluation.mask_input
        if name is None:
            return None
        if name not in self.model_io.input_names:
            raise InputError(f"evaluation.mask_input = {name!r}: the model has no such input; its inputs: "
                             f"{self.model_io.input_names}", hint="name the attention-mask input (1 = token, 0 = "
                             "padding), e.g. attention_mask")
        return np.asarray(data.feeds(slice(0, len(data)))[name])

    def _outputs(self, session: Session, side: str, dataset: str | None = None) -> Outputs:
        data = self._data(dataset)
        outputs = run_outputs(session, data, self.plan.evaluation.batch_size, progress=self.progress,
                              label=f"{self.label} {side}")
        check_finite(outputs, label=f"{self.label} {side}", allow=self.plan.evaluation.allow_non_finite)
        return outputs

    def baseline_outputs(self) -> Outputs:
        if self._baseline_outputs is None and self.baseline_memo is not None and self._baseline is not None:
            self._baseline_outputs = self.baseline_memo.get(self._baseline.key)
        if self._baseline_outputs is None:
            assert self._baseline is not None, "build the baseline first"
            session = self.artifact_io.load(self._baseline.path)
            try:
                self._baseline_outputs = self._outputs(session, "baseline")
            finally:
                session.close()
            if self.baseline_memo is not None:
                self.baseline_memo[self._baseline.key] = self._baseline_outputs
        return self._baseline_outputs

    def _baseline_on(self, dataset: str) -> Outputs:
        if dataset not in self._other_outputs:
            assert self._baseline is not None, "build the baseline first"
            session = self.artifact_io.load(self._baseline.path)
            try:
                self._other_outputs[dataset] = self._outputs(session, f"baseline on {dataset!r}", dataset)
            finally:
                session.close()
        return self._other_outputs[dataset]

    def outputs_metrics(self, outputs: Outputs, dataset: str | None = None) -> dict[str, float]:
        data = self._data(dataset)
        reference = self.baseline_outputs() if dataset is None else self._baseline_on(dataset)
        return compute_metrics(outputs, data.labels, self.metrics, reference, primary=self.primary_output,
                               dataset=data.name, mask=self.mask(data))

    def baseline_metrics(self, dataset: str | None = None) -> dict[str, float]:
        """The baseline's metrics on the evaluation data (or on ``dataset``)."""
        if dataset is not None:
            if dataset not in self._other_metrics:
                self._other_metrics[dataset] = self.outputs_metrics(self._baseline_on(dataset), dataset)
            return self._other_metrics[dataset]
        if self._baseline_metrics is None:
            self._baseline_metrics = self.outputs_metrics(self.baseline_outputs())
        return self._baseline_metrics

    def session_metrics(self, session: Session, side: str, dataset: str | None = None
                        ) -> tuple[dict[str, float], Outputs]:
        outputs = self._outputs(session, side, dataset)
        return self.outputs_metrics(outputs, dataset), outputs

    def evaluate(self, model: ModelHandle, dataset: str | None = None) -> dict[str, float]:
        """Save ``model`` into a throw-away artifact on this target and measure it (accuracy-aware steps), on the
        evaluation data or on ``dataset`` (an accuracy-aware step selects layers on its calibration data)."""
        with work_dir("edgecraft-eval-") as tmp:
            work, out = Path(tmp) / "work", Path(tmp) / "artifact"
            work.mkdir()
            out.mkdir()
            self.artifact_io.save(model, out, work)
            session = self.artifact_io.load(out)
            try:
                metrics, _ = self.session_metrics(session, "candidate", dataset)
            finally:
                session.close()
        return metrics
