"""MiniLMv2's self-attention relation loss (``relation_kl``): zero on equal inputs, blind to padding, any width."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from edgecraft.plugins.distillation.losses import relation_kl  # noqa: E402


def _pair(seed: int = 0, width: int = 8, seq: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, seq, width, generator=g), torch.randn(2, seq, width, generator=g)


def test_equal_projections_give_zero_and_different_ones_a_positive_loss() -> None:
    t, s = _pair()
    assert float(relation_kl(t, t.clone(), heads=2)) == pytest.approx(0.0, abs=1e-6)
    assert float(relation_kl(t, s, heads=2)) > 0.01


def test_matches_a_direct_computation() -> None:
    t, s = _pair(width=4)
    expected = 0.0
    for x_t, x_s in zip(t, s, strict=True):  # one relation head: softmax(x xᵀ / 2) per row
        p = torch.softmax(x_t @ x_t.T / 2, dim=-1)
        q = torch.softmax(x_s @ x_s.T / 2, dim=-1)
        expected += float((p * (p.log() - q.log())).sum(dim=-1).mean()) / 2
    assert float(relation_kl(t, s, heads=1)) == pytest.approx(expected, rel=1e-5)


def test_padding_changes_nothing() -> None:
    """Padded keys get no probability and padded query rows are left out: extra padding, same loss."""
    t, s = _pair(seq=4)
    mask = torch.ones(2, 4, dtype=torch.long)
    noise_t, noise_s = _pair(seed=1, seq=3)
    padded_t, padded_s = torch.cat([t, noise_t * 10], dim=1), torch.cat([s, noise_s], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(2, 3, dtype=torch.long)], dim=1)
    plain = relation_kl(t, s, heads=2, mask=mask)
    assert float(relation_kl(padded_t, padded_s, heads=2, mask=padded_mask)) == pytest.approx(float(plain), rel=1e-5)
    assert float(relation_kl(padded_t, padded_s, heads=2)) != pytest.approx(float(plain), rel=1e-3)


def test_gradients_are_finite_with_padding() -> None:
    t, s = _pair(seq=6)
    s.requires_grad_(True)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    relation_kl(t, s, heads=2, mask=mask).backward()
    assert s.grad is not None and torch.isfinite(s.grad).all()
    assert float(s.grad[0, 4:].abs().sum()) == 0.0  # padded positions get no gradient


def test_student_may_be_narrower_than_the_teacher() -> None:
    """Relations are seq × seq whatever the head size: a pruned (narrower) student still pairs."""
    t, _ = _pair(width=8)
    _, s = _pair(width=4)
    assert float(relation_kl(t, s, heads=2)) > 0


def test_width_that_does_not_split_into_the_heads_is_refused() -> None:
    t, s = _pair(width=6)
    with pytest.raises(ValueError, match="width 6 cannot be split into 4 relation heads"):
        relation_kl(t, s, heads=4)
