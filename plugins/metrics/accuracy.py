"""The built-in accuracy metrics: top-k against labels, and agreement and cosine against the baseline.

Each reads the model's ``evaluation.output`` for the whole evaluation set (sample axis first). Logits
are flattened per sample, so a metric compares each sample's whole tensor (a sequence of embeddings
included).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from edgecraft.errors import InputError
from edgecraft.metrics import Metric


def _flat_logits(outputs: np.ndarray) -> np.ndarray:
    return outputs.reshape(outputs.shape[0], -1)


def _labels_within(labels: np.ndarray, classes: int) -> None:
    """Labels the model cannot produce would give top-k 0 on both sides, a drop of 0 and a pass: refuse them."""
    flat = np.asarray(labels).reshape(-1)
    outside = flat[(flat < 0) | (flat >= classes)]
    if outside.size:
        shown = ", ".join(str(v) for v in np.unique(outside)[:5].tolist())
        raise InputError(f"{outside.size} of {flat.size} labels are outside the model's {classes} classes "
                         f"(0..{classes - 1}): {shown}", hint="the labels must be the model's class indices")


def _top_k(k: int) -> Callable[[np.ndarray, np.ndarray | None, np.ndarray | None], float]:
    def compute(outputs: np.ndarray, labels: np.ndarray | None, reference: np.ndarray | None) -> float:
        assert labels is not None
        logits = _flat_logits(outputs)
        _labels_within(labels, logits.shape[1])
        kk = min(k, logits.shape[1])
        top = np.argpartition(-logits, kk - 1, axis=1)[:, :kk]
        return float(np.mean(np.any(top == labels[:, None], axis=1)))

    return compute


def _agreement(outputs: np.ndarray, labels: np.ndarray | None, reference: np.ndarray | None) -> float:
    assert reference is not None
    return float(np.mean(_flat_logits(outputs).argmax(1) == _flat_logits(reference).argmax(1)))


def _cosine(outputs: np.ndarray, labels: np.ndarray | None, reference: np.ndarray | None) -> float:
    assert reference is not None
    a = _flat_logits(outputs).astype(np.float64)
    b = _flat_logits(reference).astype(np.float64)
    denom = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cos = np.where(denom > 0, np.sum(a * b, axis=1) / np.maximum(denom, 1e-300), 1.0)
    return float(np.mean(cos))


TOP1 = Metric("top1", _top_k(1), "fraction of samples whose highest logit is the label", needs_labels=True,
              perfect=1.0)
TOP5 = Metric("top5", _top_k(5), "fraction of samples whose label is among the 5 highest logits", needs_labels=True,
              perfect=1.0)
AGREEMENT = Metric("agreement", _agreement, "fraction of samples where argmax matches the baseline's",
                   needs_reference=True, perfect=1.0)
COSINE = Metric("cosine", _cosine, "mean cosine similarity of outputs to the baseline's", needs_reference=True,
                perfect=1.0)

#: What this plugin registers, in listing order.
METRICS: tuple[Metric, ...] = (TOP1, TOP5, AGREEMENT, COSINE)
