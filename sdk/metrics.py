"""Accuracy metrics. Built-ins are registered through the same hook a plugin would use.

A metric sees the model's ``evaluation.output`` (default: the first output) for the whole evaluation
set, sample axis first, the labels (if any) and the baseline's same output on the same target (for
agreement-style metrics on unlabeled data). A metric that sets ``all_outputs`` gets every output by
name instead. Cosine compares each sample's whole tensor (a sequence of embeddings included).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from edgecraft.hookspecs import hookimpl


@dataclass(frozen=True)
class Metric:
    """A named accuracy metric. ``higher_is_better`` fixes the sign of a "drop"."""

    name: str
    compute: Callable[[np.ndarray, np.ndarray | None, np.ndarray | None], float]
    summary: str
    needs_labels: bool = False
    needs_reference: bool = False
    higher_is_better: bool = True
    #: False: ``compute`` gets the ``evaluation.output`` array (and the baseline's). True: dicts of every
    #: output by name (sample axis first), for metrics that read several outputs (boxes and scores, ...).
    all_outputs: bool = False


def _flat_logits(outputs: np.ndarray) -> np.ndarray:
    return outputs.reshape(outputs.shape[0], -1)


def _top_k(k: int) -> Callable[[np.ndarray, np.ndarray | None, np.ndarray | None], float]:
    def compute(outputs: np.ndarray, labels: np.ndarray | None, reference: np.ndarray | None) -> float:
        assert labels is not None
        logits = _flat_logits(outputs)
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


BUILTIN_METRICS = (
    Metric("top1", _top_k(1), "fraction of samples whose highest logit is the label", needs_labels=True),
    Metric("top5", _top_k(5), "fraction of samples whose label is among the 5 highest logits", needs_labels=True),
    Metric("agreement", _agreement, "fraction of samples where argmax matches the baseline's", needs_reference=True),
    Metric("cosine", _cosine, "mean cosine similarity of outputs to the baseline's", needs_reference=True),
)


@hookimpl
def edgecraft_register_metrics(register: Callable[[Metric], None]) -> None:
    for metric in BUILTIN_METRICS:
        register(metric)
