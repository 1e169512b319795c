"""The loss equals its formula, checked against values computed by hand (plain math, no torch ops)."""

from __future__ import annotations

import math

import pytest
import torch
from edgecraft.plugins.distillation.losses import (
    FeatureAdapter,
    distillation_loss,
    logit_mse_loss,
    soft_target_loss,
)

STUDENT = [[1.0, 2.0, 3.0], [0.5, -1.0, 0.0]]
TEACHER = [[3.0, 1.0, 0.0], [0.0, 0.0, 2.0]]
LABELS = [2, 0]


def _softmax(row: list[float], t: float) -> list[float]:
    exps = [math.exp(v / t) for v in row]
    return [e / sum(exps) for e in exps]


def _kl_t2(student: list[list[float]], teacher: list[list[float]], t: float) -> float:
    total = 0.0
    for s_row, t_row in zip(student, teacher, strict=True):
        p, q = _softmax(t_row, t), _softmax(s_row, t)
        total += sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q, strict=True))
    return t * t * total / len(student)


def _ce(student: list[list[float]], labels: list[int]) -> float:
    return -sum(math.log(_softmax(row, 1.0)[y]) for row, y in zip(student, labels, strict=True)) / len(student)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_soft_target_loss_is_t2_scaled_kl(temperature: float) -> None:
    got = soft_target_loss(torch.tensor(STUDENT), torch.tensor(TEACHER), temperature)
    assert float(got) == pytest.approx(_kl_t2(STUDENT, TEACHER, temperature), rel=1e-5)


def test_hand_value_at_t1() -> None:
    # Row 1: p = softmax(3,1,0) = (0.8438, 0.1142, 0.0420), q = softmax(1,2,3) = (0.0900, 0.2447, 0.6652):
    # KL = 0.8438 ln(9.375) + 0.1142 ln(0.4668) + 0.0420 ln(0.0632) = 1.8884 - 0.0870 - 0.1160 = 1.6854.
    # Row 2: p = softmax(0,0,2) = (0.1065, 0.1065, 0.7870), q = softmax(.5,-1,0) = (0.5465, 0.1220, 0.3315):
    # KL = 0.1065 ln(0.1949) + 0.1065 ln(0.8730) + 0.7870 ln(2.3740) = -0.1742 - 0.0145 + 0.6805 = 0.4918.
    # Batch mean = 1.0886 (T = 1, so the T² factor is 1).
    got = soft_target_loss(torch.tensor(STUDENT), torch.tensor(TEACHER), 1.0)
    assert float(got) == pytest.approx(1.0886, abs=1e-3)


def test_identical_logits_give_zero_soft_loss() -> None:
    logits = torch.tensor(STUDENT)
    assert float(soft_target_loss(logits, logits.clone(), 3.0)) == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_mixed_loss_is_alpha_soft_plus_one_minus_alpha_ce(alpha: float) -> None:
    parts = distillation_loss(torch.tensor(STUDENT), torch.tensor(TEACHER), torch.tensor(LABELS),
                              kind="kl", temperature=2.0, alpha=alpha)
    soft, hard = _kl_t2(STUDENT, TEACHER, 2.0), _ce(STUDENT, LABELS)
    assert float(parts.total) == pytest.approx(alpha * soft + (1 - alpha) * hard, rel=1e-5)
    assert parts.soft == pytest.approx(soft, rel=1e-5)
    assert parts.hard == pytest.approx(hard, rel=1e-5)


def test_without_labels_only_soft_targets_count() -> None:
    parts = distillation_loss(torch.tensor(STUDENT), torch.tensor(TEACHER), None, kind="kl", temperature=2.0,
                              alpha=0.2)
    assert parts.hard is None
    assert float(parts.total) == pytest.approx(_kl_t2(STUDENT, TEACHER, 2.0), rel=1e-5)


def test_logit_mse_alternative() -> None:
    flat = [(s - t) ** 2 for s_row, t_row in zip(STUDENT, TEACHER, strict=True)
            for s, t in zip(s_row, t_row, strict=True)]
    expected = sum(flat) / len(flat)
    assert float(logit_mse_loss(torch.tensor(STUDENT), torch.tensor(TEACHER))) == pytest.approx(expected)
    parts = distillation_loss(torch.tensor(STUDENT), torch.tensor(TEACHER), torch.tensor(LABELS), kind="mse",
                              alpha=0.5)
    assert float(parts.total) == pytest.approx(0.5 * expected + 0.5 * _ce(STUDENT, LABELS), rel=1e-5)


def test_feature_term_is_added() -> None:
    parts = distillation_loss(torch.tensor(STUDENT), torch.tensor(TEACHER), None, temperature=1.0,
                              feature_loss=torch.tensor(0.25))
    assert float(parts.total) == pytest.approx(_kl_t2(STUDENT, TEACHER, 1.0) + 0.25, rel=1e-5)
    assert parts.feature == pytest.approx(0.25)


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown distillation loss 'l1'"):
        distillation_loss(torch.tensor(STUDENT), torch.tensor(TEACHER), None, kind="l1")


def test_feature_adapter_maps_width_and_space() -> None:
    conv = FeatureAdapter((2, 4, 8, 8), (2, 16, 4, 4))
    assert conv(torch.randn(2, 4, 8, 8)).shape == (2, 16, 4, 4)
    linear = FeatureAdapter((2, 8), (2, 32))
    assert linear(torch.randn(2, 8)).shape == (2, 32)
    with pytest.raises(ValueError, match="ranks differ"):
        FeatureAdapter((2, 8), (2, 16, 4, 4))
