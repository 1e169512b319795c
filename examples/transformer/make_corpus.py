"""Write the example's text corpus: sentences from the docstrings of Python standard library modules.

The example needs real English sentences (a sentence-embedding model's int8 error shows on real
text, not on random token ids) that ship with the repository and cost nothing to regenerate
offline. Docstrings of the standard library are such text. Training/calibration sentences and
held-out evaluation sentences come from disjoint sets of modules, so evaluation never sees a
calibration sentence. Deterministic for a given Python version (the committed files were made
with CPython 3.11): ``python examples/transformer/make_corpus.py``.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRAIN_MODULES = ("argparse", "collections", "functools", "itertools", "json", "logging", "os", "pathlib",
                 "re", "shutil", "subprocess", "string", "textwrap", "threading", "typing", "unittest")
EVAL_MODULES = ("asyncio", "csv", "datetime", "decimal", "email", "fractions", "heapq", "http.client",
                "inspect", "random", "statistics", "tarfile", "urllib.parse", "zipfile")
TRAIN_COUNT, EVAL_COUNT = 400, 200
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def docstrings(module_name: str) -> list[str]:
    """The module's docstring and those of its public classes, functions and methods, in name order."""
    module = importlib.import_module(module_name)
    texts = [inspect.getdoc(module) or ""]
    for name, obj in sorted(vars(module).items()):
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isclass(obj) or inspect.isfunction(obj):
            texts.append(inspect.getdoc(obj) or "")
        if inspect.isclass(obj):
            for attr, member in sorted(vars(obj).items()):
                if not attr.startswith("_") and inspect.isfunction(member):
                    texts.append(inspect.getdoc(member) or "")
    return texts


def sentences(text: str) -> list[str]:
    """Prose sentences of 6 to 40 words: paragraphs joined, code, doctests and tables dropped."""
    out = []
    for paragraph in re.split(r"\n\s*\n", text):
        if any(line.lstrip().startswith((">>>", "...", "$", "|", "-", "*", "=")) for line in paragraph.splitlines()):
            continue
        flat = " ".join(paragraph.split())
        for sentence in SENTENCE_END.split(flat):
            words = sentence.split()
            if not 6 <= len(words) <= 40 or not sentence.endswith((".", "?", "!")) or not sentence[0].isupper():
                continue
            if sum(c.isalpha() or c.isspace() for c in sentence) < 0.85 * len(sentence):
                continue  # mostly code or symbols
            out.append(sentence)
    return out


def collect(modules: tuple[str, ...], count: int, seen: set[str]) -> list[str]:
    """Up to ``count`` distinct sentences, taken round-robin across ``modules`` for variety."""
    per_module = []
    for name in modules:
        found = []
        for text in docstrings(name):
            for sentence in sentences(text):
                if sentence not in seen:
                    seen.add(sentence)
                    found.append(sentence)
        per_module.append(found)
    picked: list[str] = []
    for i in range(max(len(f) for f in per_module)):
        for found in per_module:
            if i < len(found) and len(picked) < count:
                picked.append(found[i])
    if len(picked) < count:
        raise SystemExit(f"only {len(picked)} sentences from {modules}; add modules")
    return picked


def main() -> None:
    seen: set[str] = set()
    train = collect(TRAIN_MODULES, TRAIN_COUNT, seen)
    held_out = collect(EVAL_MODULES, EVAL_COUNT, seen)
    (HERE / "train.txt").write_text("\n".join(train) + "\n", encoding="utf-8")
    (HERE / "eval.txt").write_text("\n".join(held_out) + "\n", encoding="utf-8")
    print(f"wrote {len(train)} training and {len(held_out)} evaluation sentences to {HERE}")


if __name__ == "__main__":
    main()
