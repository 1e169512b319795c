"""The built-in metrics plugin: registered through its entry point like any plugin; what each metric computes."""

from __future__ import annotations

import numpy as np
import pytest
from edgecraft.metrics import Metric
from edgecraft.registry import build_registry

BUILTIN = ("top1", "top5", "agreement", "cosine")
LOGITS = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5], [0.0, 0.4, 0.6]], dtype=np.float32)
LABELS = np.array([1, 0, 1, 1], dtype=np.int64)


@pytest.fixture(scope="module")
def metrics() -> dict[str, Metric]:
    return {name: build_registry().metric(name) for name in BUILTIN}


def test_builtin_metrics_come_from_the_metrics_entry_point() -> None:
    registry = build_registry()
    provenances = {(registry.metrics[name].provenance.plugin, registry.metrics[name].provenance.distribution)
                   for name in BUILTIN}
    assert provenances == {("metrics", "edgecraft")}
    assert all(registry.metrics[name].summary for name in BUILTIN)  # listed by `edgecraft plugins`


def test_top_k_against_labels(metrics: dict[str, Metric]) -> None:
    assert metrics["top1"].needs_labels and metrics["top1"].higher_is_better
    assert metrics["top1"].compute(LOGITS, LABELS, None) == pytest.approx(0.5)
    assert metrics["top5"].compute(LOGITS, LABELS, None) == pytest.approx(1.0)  # k is capped at the class count


def test_agreement_and_cosine_against_the_baseline(metrics: dict[str, Metric]) -> None:
    reference = LOGITS.copy()
    reference[0] = [0.9, 0.1, 0.0]  # the first sample's argmax differs
    assert metrics["agreement"].needs_reference
    assert metrics["agreement"].compute(LOGITS, None, reference) == pytest.approx(0.75)
    assert metrics["cosine"].compute(LOGITS, None, LOGITS) == pytest.approx(1.0)
    assert metrics["cosine"].compute(LOGITS, None, -LOGITS) == pytest.approx(-1.0)
    # each sample's whole tensor is compared (a sequence of embeddings included)
    sequence = np.ones((2, 3, 4), dtype=np.float32)
    assert metrics["cosine"].compute(sequence, None, 2 * sequence) == pytest.approx(1.0)
