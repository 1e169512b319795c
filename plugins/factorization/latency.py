"""Measured per-layer latency, so rank selection can avoid factorizations that are slower in practice.

Fewer MACs do not always mean less time: a factorized layer is two or three kernels instead of
one, each with its own launch and memory traffic, and small layers are dominated by that
overhead. So when asked, each original layer and each candidate replacement is timed in
isolation at the input shape it sees in the model, interleaved (original, candidate, original,
...) in several rounds, and the median is kept. This ignores cross-layer fusion by the runtime
(e.g. ORT folding an activation into a Conv), which is why the whole model is measured again in
the benchmark and by edgecraft's latency contracts.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

Runner = Callable[[], object]


def _torch_runner(module: nn.Module, example: torch.Tensor) -> Runner:
    module = module.eval()

    def run() -> object:
        with torch.inference_mode():
            return module(example)

    return run


def _ort_runner(module: nn.Module, example: torch.Tensor, work_dir: Path, threads: int) -> Runner:
    from edgecraft.torchkit.probe import export_probe, ort_session

    path = work_dir / f"layer{len(list(work_dir.iterdir()))}.onnx"
    names = export_probe(module, [example], path)
    session = ort_session(path, threads=threads)
    feeds = {names[0]: example.numpy()}

    def run() -> object:
        return session.run(None, feeds)

    return run


class LayerTimer:
    """Times modules at given input shapes on ``runtime`` ("torch" or "ort"), interleaved against a reference."""

    def __init__(self, runtime: str, *, threads: int = 2, repeats: int = 30, rounds: int = 5,
                 warmup: int = 5) -> None:
        if runtime not in ("torch", "ort"):
            raise ValueError(f"latency runtime must be 'torch' or 'ort', got {runtime!r}")
        self.runtime = runtime
        self.threads = threads
        self.repeats = repeats
        self.rounds = rounds
        self.warmup = warmup
        self._tmp = tempfile.TemporaryDirectory(prefix="edgecraft-factorization-")

    def close(self) -> None:
        self._tmp.cleanup()

    def __enter__(self) -> LayerTimer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _runner(self, module: nn.Module, in_shape: tuple[int, ...]) -> Runner:
        rng = np.random.default_rng(0)
        example = torch.from_numpy(rng.standard_normal(in_shape).astype(np.float32))
        if self.runtime == "torch":
            return _torch_runner(module, example)
        return _ort_runner(module, example, Path(self._tmp.name), self.threads)

    def compare(self, reference: nn.Module, candidates: list[nn.Module],
                in_shape: tuple[int, ...]) -> tuple[float, list[float]]:
        """Median seconds per call of ``reference`` and of each candidate, measured interleaved."""
        runners = [self._runner(m, in_shape) for m in [reference, *candidates]]
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            for run in runners:
                for _ in range(self.warmup):
                    run()
            samples: list[list[float]] = [[] for _ in runners]
            per_round = max(1, self.repeats // self.rounds)
            for _ in range(self.rounds):
                for index, run in enumerate(runners):
                    for _ in range(per_round):
                        start = time.perf_counter()
                        run()
                        samples[index].append(time.perf_counter() - start)
        finally:
            torch.set_num_threads(previous)
        medians = [statistics.median(s) for s in samples]
        return medians[0], medians[1:]
