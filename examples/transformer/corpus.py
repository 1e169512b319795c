"""Large offline English corpora for distillation: sentences of the installed packages' documentation.

Distilling a compressed sentence encoder needs no labels, only text the teacher embeds, so the amount
of text is a lever (issue 28: is cosine ~0.89 at 4,120 sentences a plateau, or a lack of data?). The
machine already holds hundreds of thousands of English sentences: the docstrings of numpy, scipy,
scikit-learn, pandas, torch, transformers and every other installed package, and the .rst/.md/.txt
documentation they bundle. This module turns them into a corpus, offline and deterministically:

* **read, never import**: docstrings come from ``ast`` on each ``.py`` file (importing thousands of
  modules would be slow, have side effects and fail on optional dependencies);
* **prose only**: code, doctest, table, directive and section-underline lines break paragraphs and are
  dropped; inline markup (``:func:`x```, ````x````, ``*x*``, ``[x](url)``) keeps its text; a sentence
  is kept when it has 6-40 words, starts with a capital, ends with . ? or !, is mostly letters, has no
  identifier-looking token (``a_b``, ``a.b``, ``f()``, camelCase, URLs) and reads as English (several
  common English function words, ASCII letters);
* **normalised and deduplicated** on a key of its lower-cased letters and digits;
* **disjoint from the evaluation text**: every sentence of ``eval.txt`` and of the standard-library
  modules it was drawn from (``make_corpus.EVAL_MODULES``, their source read with ``ast`` too) is
  excluded, and so is every sentence already in ``train-large.txt``;
* **nested sizes**: ``corpus(N)`` is ``train-large.txt`` (4,120 lines, whose first 400 are
  ``train.txt``, so calibration reads the same sentences whatever N) followed by the pool in a seeded
  order (``random.Random(seed)`` over the sorted pool), cut to N lines; N up to 4,120 is a prefix of
  ``train-large.txt`` itself.

Large corpora are not committed: :func:`corpus_file` writes ``corpus-<N>-seed<S>-<fingerprint>.txt``
on demand into a cache folder (``$EDGECRAFT_CORPUS_DIR``, else ``$XDG_CACHE_HOME/edgecraft/corpus``,
else ``~/.cache/edgecraft/corpus``). The fingerprint hashes the list of source files (path and size),
the filter version, the seed and the example's own files, so a different installation gets a different
file name rather than a stale corpus. Pure standard library (``ast``, ``re``, ``unicodedata``).
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import random
import re
import site
import sysconfig
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib.util import find_spec, module_from_spec, spec_from_file_location
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: Bump when the extraction or the filters change: it is part of every cache file's fingerprint.
FILTER_VERSION = 1
DEFAULT_SEED = 0
#: Files larger than this are data, not documentation (and slow to parse).
MAX_FILE_BYTES = 2_000_000
DOC_SUFFIXES = (".rst", ".md", ".txt")
#: Documentation-like files that are not prose worth learning from (legal text repeats itself; the rest is
#: metadata or lists).
SKIP_DOC_NAMES = re.compile(r"^(licen[sc]e|copying|notice|authors|contributors|requirements|entry_points|"
                            r"top_level|dependency_links|sources|record|installer|requested|namespace_packages|"
                            r"vocab|merges|api_tests|third.party)", re.IGNORECASE)
#: Folders never read: the project itself (its docs describe the model being measured), caches, tests' data.
SKIP_DIRS = {"__pycache__", "edgecraft", "edgecraft_fp16_weights", "edgecraft_onnx_reference", ".git"}
WORDS_MIN, WORDS_MAX = 6, 40
#: Common English function words: a sentence needs several of them (code comments and lists of names have few).
_ENGLISH_WORDS = (
    "a about after all also an and any are as at be because been before between both but by can could do does "
    "each either for from has have how if in into is it its may more most must no not of on once one only or "
    "other should since so some such than that the their them then there these they this those through to "
    "under until up was we were what when where whether which while who will with without would you your")
ENGLISH = frozenset(_ENGLISH_WORDS.split())
DROP_LINE = re.compile(r"^\s*(>>>|\.\.\.|\$ |\||\+[-=+]|[-=~^`#*:_]{3,}\s*$|\.\. |```|~~~|- |\* |\d+\. |"
                       r"[A-Za-z_*][\w.,* ]*\s:\s[\w\[\](){},. |'\"-]*$|@|#)")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
ROLE = re.compile(r":[\w:.-]+:`~?([^`<]*?)(?:\s*<[^>]*>)?`")
MARKUP = ((re.compile(r"``([^`]*)``"), r"\1"), (re.compile(r"`([^`<]*?)(?:\s*<[^>]*>)?`_{0,2}"), r"\1"),
          (re.compile(r"\*\*([^*]+)\*\*"), r"\1"), (re.compile(r"(?<!\w)\*([^*\s][^*]*)\*(?!\w)"), r"\1"),
          (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"))
CODE_TOKEN = re.compile(r"\w_\w|\w\.\w{2,}|\(\)|[a-z][A-Z]|://|[{}\[\]<>=|\\#@^~$%&]|\.\.\.|--|\w/\w")
QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"})


# ---------------------------------------------------------------- text -> sentences
def normalise(sentence: str) -> str:
    """NFKC, straight quotes and dashes, single spaces."""
    return " ".join(unicodedata.normalize("NFKC", sentence).translate(QUOTES).split())


def key(sentence: str) -> str:
    """The deduplication key: lower-cased letters and digits only (so punctuation or spacing variants match)."""
    return "".join(c for c in sentence.lower() if c.isalnum())


def strip_markup(text: str) -> str:
    text = ROLE.sub(r"\1", text)
    for pattern, replacement in MARKUP:
        text = pattern.sub(replacement, text)
    return text


def paragraphs(text: str, *, indented_is_code: bool) -> Iterator[str]:
    """Runs of prose lines: blank, code-like or (in documentation files) indented lines end a run."""
    run: list[str] = []
    for line in text.splitlines():
        code = DROP_LINE.match(line) is not None or (indented_is_code and line.startswith(("    ", "\t")))
        if not line.strip() or code:
            if run:
                yield " ".join(run)
            run = []
        else:
            run.append(line.strip())
    if run:
        yield " ".join(run)


def is_english_prose(sentence: str) -> bool:
    words = sentence.split()
    if not WORDS_MIN <= len(words) <= WORDS_MAX or not sentence[0].isupper() or not sentence.endswith((".", "?", "!")):
        return False
    if CODE_TOKEN.search(sentence) or sum(c.isalpha() or c.isspace() for c in sentence) < 0.85 * len(sentence):
        return False
    letters = [c for c in sentence if c.isalpha()]
    if sum(c.isascii() for c in letters) < 0.98 * len(letters):
        return False
    common = sum(w.strip(",.;:!?()'\"").lower() in ENGLISH for w in words)
    return common >= 2 and common >= 0.2 * len(words)


def sentences(text: str, *, indented_is_code: bool = False) -> list[str]:
    """The English prose sentences of a docstring or documentation text, normalised, in order."""
    out = []
    for paragraph in paragraphs(text, indented_is_code=indented_is_code):
        for raw in SENTENCE_END.split(normalise(strip_markup(paragraph))):
            sentence = raw.strip()
            if sentence and is_english_prose(sentence):
                out.append(sentence)
    return out


# ---------------------------------------------------------------- files -> texts
def docstrings(source: str) -> list[str]:
    """Docstrings of a module's source (module, classes, functions, methods), read with ``ast``: never imported."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):  # Python 2 files, templates, null bytes: not this Python's source
        return []
    nodes = (n for n in ast.walk(tree) if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef
                                                       | ast.AsyncFunctionDef))
    return [doc for node in nodes if (doc := ast.get_docstring(node, clean=True))]


def file_sentences(path: Path) -> list[str]:
    """Sentences of one ``.py`` (its docstrings) or documentation file; unreadable files give none."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    if path.suffix == ".py":
        return [s for doc in docstrings(text) for s in sentences(doc)]
    return sentences(text, indented_is_code=True)


def default_roots() -> list[Path]:
    """The site-packages folders of this Python (system and user), existing ones, without duplicates."""
    found = [*site.getsitepackages(), site.getusersitepackages(), sysconfig.get_paths()["purelib"]]
    roots: list[Path] = []
    for entry in found:
        path = Path(entry).resolve()
        if path.is_dir() and path not in roots:
            roots.append(path)
    return roots


def source_files(roots: Sequence[Path], packages: Sequence[str] | None = None) -> list[Path]:
    """``.py`` and documentation files under ``roots`` (only the top-level entries named in ``packages``, if
    given), sorted, skipping caches, the project's own packages, legal/metadata files and files over
    ``MAX_FILE_BYTES``."""
    files: list[Path] = []
    for root in roots:
        for top in sorted(Path(root).iterdir()):
            name = top.name.split("-")[0]
            if top.name in SKIP_DIRS or (packages is not None and name not in packages and top.stem not in packages):
                continue
            candidates = [top] if top.is_file() else _walk(top)
            files.extend(p for p in candidates if _wanted(p))
    return sorted(set(files))


def _walk(folder: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in sorted(filenames):
            yield Path(dirpath) / name


def _wanted(path: Path) -> bool:
    if path.suffix != ".py" and (path.suffix not in DOC_SUFFIXES or SKIP_DOC_NAMES.match(path.name)):
        return False
    try:
        return path.is_file() and path.stat().st_size <= MAX_FILE_BYTES
    except OSError:
        return False


# ---------------------------------------------------------------- the excluded text
def _eval_modules() -> tuple[str, ...]:
    """``make_corpus.EVAL_MODULES``, loaded by path (examples/ is not a package)."""
    spec = spec_from_file_location("_edgecraft_make_corpus", HERE / "make_corpus.py")
    assert spec is not None and spec.loader is not None
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    return tuple(module.EVAL_MODULES)


def example_lines(name: str) -> list[str]:
    return [line for line in (HERE / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def eval_module_files(modules: Iterable[str]) -> list[Path]:
    """Source files of the standard-library modules eval.txt came from (packages: every file in them), found
    with ``importlib.util.find_spec`` (which imports a dotted name's parent package, never the module)."""
    files: list[Path] = []
    for name in modules:
        spec = find_spec(name)
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            continue
        origin = Path(spec.origin)
        files.extend(sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin])
    return files


def excluded_keys(eval_modules: Iterable[str]) -> set[str]:
    """Keys of every sentence that must not enter a corpus: eval.txt's, the evaluation modules' docstrings'
    (with this module's filters and the looser ones of make_corpus.py), and train-large.txt's (already in)."""
    keys = {key(s) for s in example_lines("eval.txt") + example_lines("train-large.txt")}
    for path in eval_module_files(eval_modules):
        keys.update(key(s) for s in file_sentences(path))
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        keys.update(key(normalise(s)) for doc in docstrings(text) for s in SENTENCE_END.split(" ".join(doc.split())))
    return keys


# ---------------------------------------------------------------- the pool and the corpora
@dataclass
class Pool:
    """Every usable sentence of the sources, deduplicated, in the seeded order; per-package counts."""

    sentences: list[str]
    fingerprint: str
    per_package: dict[str, int] = field(default_factory=dict)
    files: int = 0
    excluded: int = 0


def fingerprint(files: Sequence[Path], seed: int) -> str:
    digest = hashlib.sha256(f"v{FILTER_VERSION} seed{seed}\n".encode())
    for name in ("eval.txt", "train-large.txt", "make_corpus.py"):
        digest.update(hashlib.sha256((HERE / name).read_bytes()).digest())
    for path in files:
        digest.update(f"{path}\0{path.stat().st_size}\n".encode())
    return digest.hexdigest()[:12]


def build_pool(roots: Sequence[Path] | None = None, *, packages: Sequence[str] | None = None,
               seed: int = DEFAULT_SEED, eval_modules: Iterable[str] | None = None) -> Pool:
    """Read every source file once and return the pool (first occurrence of each key kept, then shuffled)."""
    eval_modules = _eval_modules() if eval_modules is None else eval_modules
    files = source_files(list(roots) if roots is not None else default_roots(), packages)
    stamp = fingerprint(files, seed)  # before reading: what the pool was made from
    skip = excluded_keys(eval_modules)
    seen: set[str] = set()
    kept: list[str] = []
    per_package: dict[str, int] = {}
    excluded = 0
    for path in files:
        package = _package_of(path, roots or default_roots())
        for sentence in file_sentences(path):
            k = key(sentence)
            if k in skip:
                excluded += 1
            elif k not in seen:
                seen.add(k)
                kept.append(sentence)
                per_package[package] = per_package.get(package, 0) + 1
    random.Random(seed).shuffle(kept)
    return Pool(kept, stamp, dict(sorted(per_package.items())), len(files), excluded)


def _package_of(path: Path, roots: Sequence[Path]) -> str:
    for root in roots:
        try:
            return path.relative_to(root).parts[0].removesuffix(".py")
        except ValueError:
            continue
    return path.parent.name


def corpus_lines(pool: Pool, size: int) -> list[str]:
    """``train-large.txt`` then the pool, cut to ``size`` lines (fewer when the sources hold fewer)."""
    if size < 1:
        raise ValueError(f"corpus size must be at least 1, got {size}")
    return (example_lines("train-large.txt") + pool.sentences)[:size]


def cache_dir() -> Path:
    """``$EDGECRAFT_CORPUS_DIR``, else ``$XDG_CACHE_HOME/edgecraft/corpus``, else ``~/.cache/edgecraft/corpus``."""
    if os.environ.get("EDGECRAFT_CORPUS_DIR"):
        return Path(os.environ["EDGECRAFT_CORPUS_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgecraft" / "corpus"


def corpus_file(size: int, *, seed: int = DEFAULT_SEED, folder: Path | None = None,
                roots: Sequence[Path] | None = None, packages: Sequence[str] | None = None,
                eval_modules: Iterable[str] | None = None) -> Path:
    """The corpus of ``size`` lines as a file in the cache (built on first use; the pool is cached too).

    Sizes up to 4,120 are ``train-large.txt`` itself. A ``size`` beyond what the sources hold gives every
    sentence there is (the stats file beside it, ``.json``, says how many).
    """
    if size <= len(example_lines("train-large.txt")):
        if size < 1:
            raise ValueError(f"corpus size must be at least 1, got {size}")
        return HERE / "train-large.txt" if size == len(example_lines("train-large.txt")) else _write_prefix(
            size, folder)
    folder = folder or cache_dir()
    files = source_files(list(roots) if roots is not None else default_roots(), packages)
    stamp = fingerprint(files, seed)
    pool_path = folder / f"pool-seed{seed}-{stamp}.txt"
    stats_path = pool_path.with_suffix(".json")
    if pool_path.is_file() and stats_path.is_file():
        pool = Pool(pool_path.read_text(encoding="utf-8").splitlines(), stamp)
        pool.per_package = json.loads(stats_path.read_text(encoding="utf-8"))["per_package"]
    else:
        pool = build_pool(roots, packages=packages, seed=seed, eval_modules=eval_modules)
        stamp = pool.fingerprint  # the same unless the sources changed while they were read
        pool_path = folder / f"pool-seed{seed}-{stamp}.txt"
        stats_path = pool_path.with_suffix(".json")
        folder.mkdir(parents=True, exist_ok=True)
        _atomic_write(pool_path, "\n".join(pool.sentences) + "\n")
        _atomic_write(stats_path, json.dumps(stats(pool), indent=2))
    lines = corpus_lines(pool, size)
    path = folder / f"corpus-{len(lines)}-seed{seed}-{stamp}.txt"
    if not path.is_file():
        _atomic_write(path, "\n".join(lines) + "\n")
    return path


def _write_prefix(size: int, folder: Path | None) -> Path:
    folder = folder or cache_dir()
    path = folder / f"corpus-{size}-train-large-prefix.txt"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, "\n".join(example_lines("train-large.txt")[:size]) + "\n")
    return path


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def stats(pool: Pool) -> dict[str, object]:
    return {"sentences": len(pool.sentences), "files": pool.files, "excluded_as_eval_or_train": pool.excluded,
            "fingerprint": pool.fingerprint, "filter_version": FILTER_VERSION, "per_package": pool.per_package}
