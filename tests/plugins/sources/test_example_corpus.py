"""The transformer example's corpus: the held-out sentences never appear in any training file."""

from __future__ import annotations

from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "transformer"


def _lines(name: str) -> list[str]:
    return [line for line in (EXAMPLE / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def test_held_out_sentences_are_in_no_training_file() -> None:
    held_out = set(_lines("eval.txt"))
    assert len(held_out) == 200
    for name in ("train.txt", "train-large.txt"):
        assert not held_out & set(_lines(name)), name


def test_the_large_corpus_starts_with_train_txt() -> None:
    """Calibration reads the first sentences: the same whichever file a plan names."""
    small, large = _lines("train.txt"), _lines("train-large.txt")
    assert large[:len(small)] == small and len(large) > 10 * len(small)
    assert len(set(large)) == len(large)
