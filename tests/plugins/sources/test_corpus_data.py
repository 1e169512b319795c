"""examples/transformer/corpus_data.py: the offline corpus as a plan's factory data (distill.yaml's text)."""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from example_modules import EXAMPLE, benchmark_module, example_module


def _module() -> ModuleType:
    return example_module("corpus_data.py", "edgecraft_example_corpus_data")


def _write(path: Path, n: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"Sentence {i} says something about arrays.\n\n" for i in range(n)), encoding="utf-8")
    return path


def test_sample_is_seeded_in_file_order_and_without_repeats(tmp_path: Path) -> None:
    cd = _module()
    path = _write(tmp_path / "c.txt", 100)
    one, again, other = cd.sample(path, 40), cd.sample(path, 40), cd.sample(path, 40, seed=1)
    assert one == again and one != other
    numbers = [int(line.split()[1]) for line in one]
    assert len(set(numbers)) == 40 and numbers == sorted(numbers)  # blank lines skipped, order kept


def test_sample_larger_than_the_corpus_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.txt", 10)
    with pytest.raises(ValueError, match=r"c\.txt holds 10 sentences, fewer than the 64 asked"):
        _module().sample(path, 64)


def test_corpus_path_takes_the_newest_cached_corpus_of_that_size(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A cached corpus of the size is used as is (no pool rebuild for another virtualenv's fingerprint)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("EDGECRAFT_CORPUS_DIR", str(cache))
    old = _write(cache / "corpus-50-seed0-aaaaaaaaaaaa.txt", 50)
    new = _write(cache / "corpus-50-seed0-bbbbbbbbbbbb.txt", 50)
    _write(cache / "corpus-60-seed0-cccccccccccc.txt", 60)
    os.utime(old, (1, 1))
    assert _module().corpus_path(50) == new


@pytest.mark.parametrize("plan_file", ["distill.yaml", "prune.yaml", "factorize.yaml"])
def test_the_plan_names_a_factory_that_exists(plan_file: str) -> None:
    import yaml

    plan = yaml.safe_load((EXAMPLE / plan_file).read_text())
    file, _, name = plan["data"]["train"]["factory"].partition(":")
    assert plan["data"]["train"]["kind"] == "factory" and callable(getattr(_module(), name))
    assert (EXAMPLE / file).is_file()


def test_sample_is_the_benchmarks_budget_sample(tmp_path: Path) -> None:
    """The plans reproduce the benchmarks' rows only if a factory draws the sentences the benchmark trained on
    (corpus_scaling.budget_feeds: the same seeded permutation, kept in corpus order)."""
    scaling = benchmark_module("corpus_scaling")
    path = _write(tmp_path / "c.txt", 200)
    for seed in (0, 1):
        drawn = [int(line.split()[1]) for line in _module().sample(path, 3 * 32, seed)]
        rows, epochs, steps = scaling.budget_feeds({"x": np.arange(200)}, steps=3, epochs=None, seed=seed)
        assert (epochs, steps) == (1, 3) and drawn == rows["x"].tolist()


def test_distill_epoch_is_the_whole_corpus_in_file_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cd = _module()
    _write(tmp_path / "corpus-169330-seed0-aaaaaaaaaaaa.txt", 5)
    monkeypatch.setenv("EDGECRAFT_CORPUS_DIR", str(tmp_path))
    monkeypatch.setattr(cd, "tokenize", lambda lines: {"lines": lines})
    feeds, labels = cd.distill_epoch()
    assert feeds["lines"] == [f"Sentence {i} says something about arrays." for i in range(5)] and labels is None


@pytest.mark.realmodels
def test_tokenize_gives_the_models_inputs(tmp_path: Path) -> None:
    feeds = _module().tokenize(["A first sentence.", "A second, longer sentence about embeddings."])
    assert set(feeds) == {"input_ids", "token_type_ids", "attention_mask"}
    assert all(v.shape == (2, 64) and v.dtype == np.int64 for v in feeds.values())
    assert feeds["attention_mask"][1].sum() > feeds["attention_mask"][0].sum()
