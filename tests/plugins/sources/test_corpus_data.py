"""examples/transformer/corpus_data.py: the offline corpus as a plan's factory data (distill.yaml's text)."""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from example_modules import EXAMPLE, example_module


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


def test_the_plan_names_a_factory_that_exists() -> None:
    import yaml

    plan = yaml.safe_load((EXAMPLE / "distill.yaml").read_text())
    file, _, name = plan["data"]["train"]["factory"].partition(":")
    assert plan["data"]["train"]["kind"] == "factory" and callable(getattr(_module(), name))
    assert (EXAMPLE / file).is_file()


@pytest.mark.realmodels
def test_tokenize_gives_the_models_inputs(tmp_path: Path) -> None:
    feeds = _module().tokenize(["A first sentence.", "A second, longer sentence about embeddings."])
    assert set(feeds) == {"input_ids", "token_type_ids", "attention_mask"}
    assert all(v.shape == (2, 64) and v.dtype == np.int64 for v in feeds.values())
    assert feeds["attention_mask"][1].sum() > feeds["attention_mask"][0].sum()
