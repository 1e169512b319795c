"""The conformance checks of a dataset kind and of a metric: what the evaluation reads must mean what it says.

A dataset kind's ``load()`` must give a :class:`~edgecraft.datasets.Dataset` of numeric arrays with one sample
axis and equal lengths, finite floats, 1-D integer labels that are class indices (>= 0, and below the model's
class count when the kind read the model's I/O), the sample shape its params declare, ``max_samples``
honoured, and the same data on a second load (a gate measured on other data each run compares nothing).

A metric's ``compute`` must return a finite number, the same twice, without editing the arrays it is given;
outputs identical to the reference (or logits whose argmax is the label) must score at least as well as
random ones, and exactly ``Metric.perfect`` when the metric declares it; the score must not depend on the
order of the samples unless the metric says so (``order_invariant=False``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from edgecraft.errors import EdgecraftError
from edgecraft.testing.findings import RAISED, ConformanceReport, Rung, attempt
from edgecraft.testing.source_check import params_for

#: The kit's evaluation set for metrics: samples, classes.
SAMPLES, CLASSES = 12, 3
#: Token positions of the per-token outputs a masked metric is checked on.
POSITIONS = 6


class DatasetCheck:
    def __init__(self, registry: Any, name: str, params: dict[str, Any], work: Path) -> None:
        provided = registry.dataset_kinds[name]
        self.cls, self.name, self.params, self.work = provided.obj, name, params, work
        self.report = ConformanceReport("dataset kind", name, str(provided.provenance))
        self.asked_for_io = False
        self._io: Any = None

    def _model_io(self) -> Any:
        """The kit's CNN's I/O (``input[batch,1,8,8]`` -> ``logits[batch,3]``), for kinds that shape data for
        the plan's model; recorded, so that such a kind's arrays are checked against it."""
        import onnx
        from edgecraft.modelio import io_from_onnx
        from edgecraft.testing.models import cnn_onnx

        self.asked_for_io = True
        if self._io is None:
            self._io = io_from_onnx(onnx.load(str(cnn_onnx(self.work / "kit-model.onnx"))))
        return self._io

    def run(self) -> ConformanceReport:
        from edgecraft.plan import DatasetParams

        r = self.report
        params = params_for(r, self.cls, DatasetParams, self.name, self.params, "edgecraft.plan.DatasetParams")
        if params is None:
            return r
        first = self._load(params, "first load")
        if first is None:
            return r
        self._check_contents(first, params)
        second = self._load(params, "second load")
        if second is not None:
            if second.fingerprint() != first.fingerprint():
                r.add("violation", "load()", "two loads of the same params gave different data; expected the same "
                      "arrays and labels (seed any sampling), or the gate compares runs on different data")
            else:
                r.add("ok", "load()", "the same data on a second load")
        if len(first) >= 2:
            small = params.model_copy(update={"max_samples": 1})
            fewer = self._load(small, "with max_samples=1")
            if fewer is not None:
                if len(fewer) != 1:
                    r.add("violation", "load()", f"with max_samples=1 returned {len(fewer)} samples; expected 1 "
                          "(build the result with edgecraft.datasets.make_dataset(..., max_samples=...))")
                else:
                    r.add("ok", "load()", "honours max_samples")
        return r

    def _load(self, params: Any, where: str) -> Any:
        from edgecraft.datasets import Dataset, DatasetContext

        r = self.report
        ctx = DatasetContext(self.work, model_params=None, model_io=self._model_io)
        ok, data = attempt(r, "load()", where, lambda: self.cls().load("kit", params, ctx))
        if not ok:
            return None
        if not isinstance(data, Dataset):
            r.add("violation", "load()", f"{where}: returned {type(data).__name__}; expected an edgecraft.datasets."
                  "Dataset (build it with make_dataset)")
            return None
        return data

    def _check_contents(self, data: Any, params: Any) -> None:
        from edgecraft.datasets import make_dataset, sample_shape_of

        r = self.report
        if data.name != "kit":
            r.add("violation", "load()", f"named the dataset {data.name!r}; expected the name it was asked for, "
                  "'kit' (errors and reports name it)")
        try:
            make_dataset(data.name, dict(data.arrays), data.y)
        except EdgecraftError as exc:
            r.add("violation", "load()", exc.message)
            return
        except Exception as exc:
            r.add("violation", "load()", f"arrays that cannot be checked: {type(exc).__name__}: {exc}")
            return
        floats = [k for k, v in data.arrays.items() if v.dtype == np.float64]
        if floats:
            r.add("violation", "load()", f"array(s) {floats} are float64; expected float32 (models take float32; "
                  "make_dataset converts)")
        if data.y is not None:
            if data.y.dtype != np.int64:
                r.add("violation", "load()", f"labels are {data.y.dtype}; expected int64 class indices")
            if (data.y < 0).any():
                r.add("violation", "load()", f"{int((data.y < 0).sum())} label(s) are negative; expected class "
                      "indices >= 0")
        declared = sample_shape_of(params)
        if declared is not None:
            if len(data.arrays) != 1:
                r.add("violation", "load()", f"params declare one sample shape {declared.shape} but the dataset "
                      f"has {len(data.arrays)} arrays")
            elif list(data.x.shape[1:]) != list(declared.shape):
                r.add("violation", "load()", f"samples are {list(data.x.shape[1:])}; its params ({declared.fields}) "
                      f"declare {declared.shape}")
            else:
                r.add("ok", "load()", f"samples have the declared shape {declared.shape}")
        if self.asked_for_io:
            self._check_binds(data)
        if r.ok:
            labels = "no labels" if data.y is None else f"labels {sorted(set(data.y.tolist()))[:10]}"
            r.add("ok", "load()", f"{len(data)} samples, arrays {sorted(data.arrays)}, finite, {labels}")

    def _check_binds(self, data: Any) -> None:
        """A kind that read the model's I/O shapes its arrays for that model: they must bind to it."""
        r = self.report
        io = self._model_io()
        try:
            data.bind(io)
        except EdgecraftError as exc:
            r.add("violation", "load()", f"read the model's I/O but its arrays do not feed it: {exc.message}")
            return
        classes = io.outputs[0].shape[-1] if io.outputs else None
        if data.y is not None and isinstance(classes, int) and (data.y >= classes).any():
            r.add("violation", "load()", f"labels up to {int(data.y.max())} for a model with {classes} classes; "
                  f"expected labels in 0..{classes - 1}")
            return
        r.add("ok", "load()", "read the model's I/O and its arrays feed that model")


class MetricCheck:
    def __init__(self, registry: Any, name: str) -> None:
        provided = registry.metrics[name]
        self.metric, self.name = provided.obj, name
        self.report = ConformanceReport("metric", name, str(provided.provenance))

    def run(self) -> ConformanceReport:
        r, m = self.report, self.metric
        if not callable(m.compute):
            r.add("violation", "compute", f"is {m.compute!r}; expected a callable (outputs, labels, reference)")
            return r
        rng = np.random.default_rng(0)
        labels = rng.integers(0, CLASSES, SAMPLES, dtype=np.int64)
        # A metric that needs a mask reads per-token outputs [samples, positions, features] and the attention
        # mask [samples, positions]; it gets sentences of 1..POSITIONS real tokens, the rest padding.
        tokens = (POSITIONS,) if getattr(m, "needs_mask", False) else ()
        self._mask: np.ndarray | None = None
        if tokens:
            lengths = rng.integers(1, POSITIONS + 1, SAMPLES)
            self._mask = (np.arange(POSITIONS)[None, :] < lengths[:, None]).astype(np.int64)
        outputs = rng.standard_normal((SAMPLES, *tokens, CLASSES)).astype(np.float32)
        reference = (outputs + 0.5 * rng.standard_normal(outputs.shape)).astype(np.float32)
        onehot = np.eye(CLASSES, dtype=np.float32)[labels].reshape(SAMPLES, *(1,) * len(tokens), CLASSES)
        perfect = (onehot * 4 + 0.01 * outputs).astype(np.float32)
        score = self._score("on random outputs", outputs, labels, reference)
        if score is None:
            return r
        again = self._score("called again", outputs, labels, reference)
        if again is not None and again != score:
            r.add("violation", "compute()", f"returned {score!r} then {again!r} for the same arrays; expected the "
                  "same score")
        best = self._score("on outputs identical to the reference (argmax = label)", perfect, labels, perfect)
        if best is not None:
            self._check_perfect(best, score)
        if getattr(m, "order_invariant", True):
            order = rng.permutation(SAMPLES)
            mask = self._mask
            if mask is not None:
                self._mask = mask[order]
            shuffled = self._score("on the samples in another order", outputs[order], labels[order],
                                   reference[order])
            self._mask = mask
            if shuffled is not None and not np.isclose(shuffled, score, rtol=1e-6, atol=1e-9):
                r.add("violation", "compute()", f"scores {score!r} in one sample order and {shuffled!r} in another; "
                      "expected the same (or declare Metric(order_invariant=False))")
            elif shuffled is not None:
                r.add("ok", "compute()", "does not depend on the order of the samples")
        return r

    def _score(self, where: str, outputs: np.ndarray, labels: np.ndarray, reference: np.ndarray) -> float | None:
        r, m = self.report, self.metric
        given = (outputs.copy(), labels.copy() if m.needs_labels else None,
                 reference.copy() if m.needs_reference else None)
        args: tuple[Any, ...] = given
        if m.all_outputs:
            args = ({"logits": given[0]}, given[1], None if given[2] is None else {"logits": given[2]})
        ladder: tuple[Rung, ...] = RAISED
        if m.all_outputs:  # it reads outputs by name; the kit's model has one, 'logits'
            ladder = ((KeyError, "skipped", lambda exc: f"reads output {exc} by name; the kit's model has only "
                       "'logits' (check it in a plan on its own model)"), *RAISED)
        kwargs = {"mask": self._mask.copy()} if self._mask is not None else {}
        ok, value = attempt(r, "compute()", where, lambda: m.compute(*args, **kwargs), ladder)
        if not ok:
            return None
        for array, original in zip(given, (outputs, labels, reference), strict=True):
            if array is not None and not np.array_equal(array, original):
                r.add("violation", "compute()", f"{where}: edited the arrays it was given; expected them untouched "
                      "(the same outputs feed every metric)")
                return None
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            r.add("violation", "compute()", f"{where}: returned {type(value).__name__} ({value!r:.60}); expected a "
                  "float")
            return None
        if not np.isfinite(value):
            r.add("violation", "compute()", f"{where}: returned {value}; expected a finite float (a contract on "
                  "NaN is neither met nor missed)")
            return None
        return float(value)

    def _check_perfect(self, best: float, random: float) -> None:
        r, m = self.report, self.metric
        declared = getattr(m, "perfect", None)
        if declared is not None and not np.isclose(best, declared, rtol=1e-6, atol=1e-6):
            r.add("violation", "compute()", f"scores {best!r} on outputs identical to the reference (argmax = "
                  f"label); it declares perfect={declared!r}")
        elif (best < random) if m.higher_is_better else (best > random):
            word = "higher" if m.higher_is_better else "lower"
            r.add("violation", "compute()", f"scores {best!r} on outputs identical to the reference (argmax = label) "
                  f"but {random!r} on random ones; higher_is_better={m.higher_is_better}, so expected the identical "
                  f"outputs to score {word}")
        else:
            r.add("ok", "compute()", f"finite, the same twice, {best!r} on identical outputs vs {random!r} on random")
