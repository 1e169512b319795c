"""The built-in accuracy metrics: top-k against labels, and agreement and cosine against the baseline.

Each reads the model's ``evaluation.output`` for the whole evaluation set (sample axis first). Logits
are flattened per sample, so a metric compares each sample's whole tensor (a sequence of embeddings
included). That makes ``cosine`` on a transformer's ``last_hidden_state`` count padding positions (68% of the
tensor on short sentences padded to 64): ``masked_cosine`` and ``pooled_cosine`` read the attention mask
(``evaluation.mask_input``) and leave them out, per token or after mean pooling.
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


def _token_mask(outputs: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The mask as booleans [samples, positions], checked against a [samples, positions, ...] output."""
    if mask is None:
        raise InputError("no attention mask given", hint="set evaluation.mask_input")
    m = np.asarray(mask)
    if outputs.ndim < 3 or m.ndim != 2 or outputs.shape[:2] != m.shape:
        raise InputError(f"the output has shape {list(outputs.shape)} and the mask {list(m.shape)}: a masked metric "
                         "needs a per-token output [samples, positions, features] and a mask [samples, positions]",
                         hint="point evaluation.output at the token output (e.g. last_hidden_state); a pooled "
                         "sentence embedding is compared with 'cosine'")
    valid = m != 0
    if not valid.any(axis=1).all():
        raise InputError(f"{int((~valid.any(axis=1)).sum())} sample(s) have no token in the mask (all padding)",
                         hint="check evaluation.mask_input names the attention mask")
    return valid


def _rows_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    denom = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return np.where(denom > 0, np.sum(a * b, axis=-1) / np.maximum(denom, 1e-300), 1.0)


def _masked_cosine(outputs: np.ndarray, labels: np.ndarray | None, reference: np.ndarray | None, *,
                   mask: np.ndarray | None = None) -> float:
    """Mean over samples of the mean cosine of each real token's vector to the baseline's (padding left out)."""
    assert reference is not None
    valid = _token_mask(outputs, mask)
    n, s = valid.shape
    cos = _rows_cosine(outputs.reshape(n, s, -1), reference.reshape(n, s, -1))
    return float(np.mean(np.sum(cos * valid, axis=1) / valid.sum(axis=1)))


def _pooled_cosine(outputs: np.ndarray, labels: np.ndarray | None, reference: np.ndarray | None, *,
                   mask: np.ndarray | None = None) -> float:
    """Cosine of the mask-weighted mean over tokens (sentence-transformers' mean pooling) to the baseline's."""
    assert reference is not None
    valid = _token_mask(outputs, mask)
    n, s = valid.shape
    weights = valid[:, :, None].astype(np.float64)

    def pool(x: np.ndarray) -> np.ndarray:
        return np.sum(x.reshape(n, s, -1) * weights, axis=1) / weights.sum(axis=1)

    return float(np.mean(_rows_cosine(pool(outputs), pool(reference))))


TOP1 = Metric("top1", _top_k(1), "fraction of samples whose highest logit is the label", needs_labels=True,
              perfect=1.0)
TOP5 = Metric("top5", _top_k(5), "fraction of samples whose label is among the 5 highest logits", needs_labels=True,
              perfect=1.0)
AGREEMENT = Metric("agreement", _agreement, "fraction of samples where argmax matches the baseline's",
                   needs_reference=True, perfect=1.0)
COSINE = Metric("cosine", _cosine, "mean cosine similarity of outputs to the baseline's", needs_reference=True,
                perfect=1.0)
MASKED_COSINE = Metric("masked_cosine", _masked_cosine, "mean per-token cosine to the baseline's over real tokens "
                       "only (evaluation.mask_input; padding positions left out)", needs_reference=True,
                       needs_mask=True, perfect=1.0)
POOLED_COSINE = Metric("pooled_cosine", _pooled_cosine, "cosine to the baseline's of the mean over real tokens "
                       "(mean pooling with evaluation.mask_input)", needs_reference=True, needs_mask=True, perfect=1.0)

#: What this plugin registers, in listing order.
METRICS: tuple[Metric, ...] = (TOP1, TOP5, AGREEMENT, COSINE, MASKED_COSINE, POOLED_COSINE)
