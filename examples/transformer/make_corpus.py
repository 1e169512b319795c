"""Write the example's text corpus: sentences from the docstrings of Python standard library modules.

The example needs real English sentences (a sentence-embedding model's int8 error shows on real
text, not on random token ids) that ship with the repository and cost nothing to regenerate
offline. Docstrings of the standard library are such text. Training/calibration sentences and
held-out evaluation sentences come from disjoint sets of modules, so evaluation never sees a
calibration sentence. Deterministic for a given Python version (the committed files were made
with CPython 3.11): ``python examples/transformer/make_corpus.py``.

``train-large.txt`` is ``train.txt`` followed by sentences from many more standard-library modules
(``EXTRA_TRAIN_MODULES``, none of them an evaluation module or inside one): the recoveries after
pruning, layer distillation and factorization only imitate the original model's outputs, so any
real text helps, and 400 sentences were far too few (the compressed models fitted the training
sentences and not the held-out ones). It excludes every evaluation sentence, and its first 400
lines are ``train.txt`` (so calibration, which reads the first sentences, is unchanged).

Larger corpora (tens or hundreds of thousands of sentences of the installed packages' documentation,
disjoint from eval.txt) are not committed: ``python make_corpus.py --size 40000`` writes one into a cache
folder, deterministically, and prints its path (``corpus.py`` explains how they are made).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRAIN_MODULES = ("argparse", "collections", "functools", "itertools", "json", "logging", "os", "pathlib",
                 "re", "shutil", "subprocess", "string", "textwrap", "threading", "typing", "unittest")
EVAL_MODULES = ("asyncio", "csv", "datetime", "decimal", "email", "fractions", "heapq", "http.client",
                "inspect", "random", "statistics", "tarfile", "urllib.parse", "zipfile")
TRAIN_COUNT, EVAL_COUNT = 400, 200
#: More training-only modules for train-large.txt (disjoint from EVAL_MODULES and their packages; modules
#: that do not import here, e.g. tkinter without Tk, are skipped, which the script reports).
EXTRA_TRAIN_MODULES = (
    "abc", "ast", "base64", "bdb", "bz2", "calendar", "cmd", "code", "codecs", "configparser", "contextlib",
    "copy", "dataclasses", "dbm", "difflib", "dis", "doctest", "enum", "filecmp", "fileinput", "fnmatch",
    "ftplib", "getopt", "glob", "graphlib", "gzip", "hmac", "imaplib", "importlib.metadata", "io", "ipaddress",
    "linecache", "locale", "lzma", "mailbox", "mimetypes", "multiprocessing.managers", "numbers", "optparse",
    "pdb", "pickletools", "pkgutil", "platform", "plistlib", "poplib", "pstats", "py_compile", "pyclbr", "pydoc",
    "queue", "quopri", "sched", "secrets", "selectors", "shelve", "shlex", "signal", "site", "smtplib", "socket",
    "socketserver", "sqlite3", "ssl", "symtable", "sysconfig", "tempfile", "timeit", "tokenize", "traceback",
    "tracemalloc", "unittest.mock", "uuid", "venv", "warnings", "weakref", "webbrowser", "wsgiref.handlers",
    "wsgiref.simple_server", "xml.dom.minidom", "xml.etree.ElementTree", "xmlrpc.client", "xmlrpc.server",
    "zipapp", "zipimport", "_pyio", "tkinter", "turtle")
LARGE_COUNT = 4400
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


def importable(modules: tuple[str, ...]) -> tuple[str, ...]:
    """The modules that import in this Python (the others are reported and skipped)."""
    found = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # any import failure means: not available in this Python
            print(f"skipping {name}: {type(exc).__name__}: {exc}")
            continue
        found.append(name)
    return tuple(found)


def collect(modules: tuple[str, ...], count: int, seen: set[str], *, exact: bool = True) -> list[str]:
    """Up to ``count`` distinct sentences, taken round-robin across ``modules`` for variety (``exact``:
    fewer is an error)."""
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
    if exact and len(picked) < count:
        raise SystemExit(f"only {len(picked)} sentences from {modules}; add modules")
    return picked


def write_large(size: int, seed: int, folder: Path | None) -> None:
    """``--size``: the offline corpus of ``size`` lines (see corpus.py), in the cache folder or ``folder``."""
    from corpus import cache_dir, corpus_file

    path = corpus_file(size, seed=seed, folder=folder)
    lines = sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    print(f"{path}: {lines} lines ({size} asked)")
    pools = sorted((folder or cache_dir()).glob(f"pool-seed{seed}-*.json"), key=lambda p: p.stat().st_mtime)
    if pools and size > 4120:
        stats = json.loads(pools[-1].read_text(encoding="utf-8"))
        print(f"pool: {stats['sentences']} sentences from {stats['files']} files; "
              f"{stats['excluded_as_eval_or_train']} dropped as eval or train-large sentences")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, help="write the offline corpus of this many lines instead (corpus.py)")
    parser.add_argument("--seed", type=int, default=0, help="--size: the order of the added sentences")
    parser.add_argument("--out-dir", type=Path, help="--size: folder (default: the cache folder, see corpus.py)")
    args = parser.parse_args(argv)
    if args.size is not None:
        write_large(args.size, args.seed, args.out_dir)
        return
    seen: set[str] = set()
    train = collect(TRAIN_MODULES, TRAIN_COUNT, seen)
    held_out = collect(EVAL_MODULES, EVAL_COUNT, seen)
    (HERE / "train.txt").write_text("\n".join(train) + "\n", encoding="utf-8")
    (HERE / "eval.txt").write_text("\n".join(held_out) + "\n", encoding="utf-8")
    # After the held-out sentences are drawn: `seen` holds them, so none of them can enter train-large.txt.
    assert not set(EVAL_MODULES) & set(EXTRA_TRAIN_MODULES)
    assert not any(m.startswith(tuple(e + "." for e in EVAL_MODULES)) for m in EXTRA_TRAIN_MODULES)
    more = collect(importable(EXTRA_TRAIN_MODULES), LARGE_COUNT - len(train), seen, exact=False)
    large = train + more
    (HERE / "train-large.txt").write_text("\n".join(large) + "\n", encoding="utf-8")
    print(f"wrote {len(train)} training ({len(large)} in train-large.txt) and {len(held_out)} evaluation sentences "
          f"to {HERE}")


if __name__ == "__main__":
    main()
