"""examples/transformer/corpus.py: large offline corpora, deterministic, disjoint from eval.txt, no network."""

from __future__ import annotations

import socket
from pathlib import Path
from types import ModuleType

import pytest
from example_modules import EXAMPLE, benchmark_module, example_module


def _corpus() -> ModuleType:
    return example_module("corpus.py", "edgecraft_example_corpus")


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


EVAL = _lines(EXAMPLE / "eval.txt")
#: Evaluation sentences the filters would keep (so excluding them is the disjointness rule's doing).
EVAL_PROSE = [s for s in EVAL if _corpus().is_english_prose(s) and '"' not in s and "\\" not in s][:2]
PROSE = [f"The {word} function returns a new array with the values of the input in sorted order {i} times."
         for i, word in enumerate(["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth"])]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A fake site-packages: one package with docstrings (prose, code, doctests, an eval sentence and a
    near-duplicate), a bundled .rst, a licence file and a dist-info folder."""
    root = tmp_path / "site-packages"
    pkg = root / "fakepkg"
    pkg.mkdir(parents=True)
    docs = "\n\n".join([
        PROSE[0], PROSE[1] + "\n\n>>> import fakepkg\n>>> fakepkg.sort([3, 1])",
        "x : array_like\n    " + PROSE[2], f"{EVAL_PROSE[0]} {PROSE[3]}",
        PROSE[0].upper().replace(".", " !").rstrip(" !") + ".",
        "Use np.sort_values() with a_b=3 to sort the array here.",
    ])
    function = f'def f():\n    """{PROSE[4]} {EVAL_PROSE[1]}"""\n'
    (pkg / "__init__.py").write_text(f'"""{docs}"""\n\n{function}', encoding="utf-8")
    (pkg / "broken.py").write_text("def (:\n", encoding="utf-8")
    (pkg / "guide.rst").write_text(f"Guide\n=====\n\n{PROSE[5]}\n\n.. code-block:: python\n\n    {PROSE[6]}\n",
                                   encoding="utf-8")
    (pkg / "LICENSE.txt").write_text(PROSE[7] + "\n", encoding="utf-8")
    return root


def test_some_eval_sentences_pass_the_filters() -> None:
    assert len(EVAL_PROSE) == 2


def test_sentences_keep_prose_and_drop_code() -> None:
    corpus = _corpus()
    text = ("See :func:`~numpy.sort` and :meth:`numpy.ndarray.sort` for the ``kind`` of sort used here.\n\n"
            ">>> np.sort(a)\narray([1, 2])\n\nParameters\n----------\na : array_like\n"
            "    Array to be sorted by the function in this module.\n\nshort one.")
    assert corpus.sentences(text) == ["Array to be sorted by the function in this module."]
    text = text.replace(":meth:`numpy.ndarray.sort`", "*that method*").replace("~numpy.sort", "sort")
    assert corpus.sentences(text) == ["See sort and that method for the kind of sort used here.",
                                      "Array to be sorted by the function in this module."]
    assert not corpus.is_english_prose("Das ist ein Satz auf Deutsch mit sieben Worten hier.")
    assert not corpus.is_english_prose("Call foo_bar() on the object to get a result back now.")


def test_corpus_is_deterministic_disjoint_and_nested(site: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = _corpus()

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the corpus tool must not use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    large = _lines(EXAMPLE / "train-large.txt")
    first = corpus.corpus_file(len(large) + 50, folder=tmp_path / "a", roots=[site])
    again = corpus.corpus_file(len(large) + 50, folder=tmp_path / "b", roots=[site])
    assert first.read_bytes() == again.read_bytes() and first.name == again.name
    lines = _lines(first)
    assert lines[:len(large)] == large  # calibration reads the same first sentences
    added = lines[len(large):]
    # Prose from docstrings, numpy-style descriptions and the .rst; not the licence, the code block, the
    # near-duplicate, the identifier-laden sentence or the eval sentences.
    assert sorted(added) == sorted([PROSE[0], PROSE[1], PROSE[2], PROSE[3], PROSE[4], PROSE[5]])
    assert not set(EVAL) & set(lines)
    other_seed = corpus.corpus_file(len(large) + 50, folder=tmp_path / "c", roots=[site], seed=1)
    assert sorted(_lines(other_seed)) == sorted(lines) and other_seed.name != first.name
    smaller = corpus.corpus_file(len(large) + 3, folder=tmp_path / "a", roots=[site])
    assert _lines(smaller) == lines[:len(large) + 3]
    assert _lines(corpus.corpus_file(10, folder=tmp_path / "a", roots=[site])) == large[:10]


def test_eval_module_sentences_are_excluded(tmp_path: Path) -> None:
    """A vendored copy of an evaluation module (here: statistics.py) contributes nothing."""
    corpus = _corpus()
    root = tmp_path / "site-packages"
    (root / "vendored").mkdir(parents=True)
    source = Path(corpus.eval_module_files(["statistics"])[0]).read_text(encoding="utf-8")
    (root / "vendored" / "stats_copy.py").write_text(source, encoding="utf-8")
    pool = corpus.build_pool([root], eval_modules=["statistics"])
    assert pool.sentences == [] and pool.excluded > 0


def test_bad_size_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="corpus size must be at least 1"):
        _corpus().corpus_file(0, folder=tmp_path)


@pytest.mark.slow
@pytest.mark.huggingface
@pytest.mark.realmodels
def test_corpus_scaling_benchmark_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """benchmarks/corpus_scaling.py --smoke: real MiniLM, two tiny corpora, a table in the JSON."""
    import json

    monkeypatch.setenv("EDGECRAFT_CORPUS_DIR", str(tmp_path / "cache"))
    bench = benchmark_module("corpus_scaling")
    assert bench.main(["--smoke", "--json", str(tmp_path / "scaling.json")]) == 0
    result = json.loads((tmp_path / "scaling.json").read_text())
    table = result["table"]
    assert [(r["corpus_size"], r["budget"]) for r in table] == [(32, "epochs=1"), (96, "epochs=1"),
                                                                (32, "steps=2"), (96, "steps=2")]
    assert [r["distinct_sentences"] for r in table] == [32, 96, 32, 64]  # steps=2: 64 rows sampled from 96
    assert all(r["steps"] >= 1 and 0 < r["cos"] <= 1 for r in table) and result["smoke"] is True
    assert "cpu_int8_features" in result
