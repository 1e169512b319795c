"""The accuracy metric type: what a metric plugin registers and what contracts and evaluation read.

The built-in metrics (top1, top5, agreement, cosine) live in the ``metrics`` plugin
(:mod:`edgecraft.plugins.metrics`) and register through ``edgecraft_register_metrics`` exactly as a
third party's would; the core looks every metric up by name in the registry, never in a list of its own.

A metric sees the model's ``evaluation.output`` (default: the first output) for the whole evaluation
set, sample axis first, the labels (if any) and the baseline's same output on the same target (for
agreement-style metrics on unlabeled data). A metric that sets ``all_outputs`` gets every output by
name instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Metric:
    """A named accuracy metric. ``higher_is_better`` fixes the sign of a "drop"."""

    name: str
    #: ``(outputs, labels or None, the baseline's outputs or None) -> score``.
    compute: Callable[[np.ndarray, np.ndarray | None, np.ndarray | None], float]
    summary: str
    needs_labels: bool = False
    needs_reference: bool = False
    higher_is_better: bool = True
    #: False: ``compute`` gets the ``evaluation.output`` array (and the baseline's). True: dicts of every
    #: output by name (sample axis first), for metrics that read several outputs (boxes and scores, ...).
    all_outputs: bool = False
    #: The score of a perfect prediction (outputs identical to the baseline's, or whose argmax is the label),
    #: e.g. 1.0 for top-1 or cosine, 0.0 for an error; None: not fixed. The conformance kit checks it.
    perfect: float | None = None
    #: The score is the same whatever the order of the samples (a mean over samples). The conformance kit
    #: checks it unless False (a metric over a sequence of samples, such as a streaming error).
    order_invariant: bool = True
    #: True: ``compute`` also gets ``mask=`` (samples x positions, 1 = token, 0 = padding), the values of the
    #: model input ``evaluation.mask_input`` names (masked and pooled metrics of transformer outputs).
    needs_mask: bool = False
