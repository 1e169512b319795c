"""A loaded ``.pte`` on the ExecuTorch runtime (``executorch.runtime``), run one exported batch at a time."""

from __future__ import annotations

import platform
from collections.abc import Mapping
from typing import Any

import numpy as np
from edgecraft.backend import Session
from edgecraft.modelio import ModelIO


class ExecutorchSession(Session):
    """Runs the program's ``forward``. Feeds with more samples than the exported batch run as several calls
    (one per exported batch) whose outputs are concatenated along each output's batch axis."""

    def __init__(self, method: Any, io: ModelIO, facts: dict[str, Any], threads: int, version: str) -> None:
        self._method, self._io, self._facts, self._threads, self._version = method, io, facts, threads, version
        self._batch = int(facts.get("export_batch", 1))
        self._half = bool(facts.get("half_inputs"))  # the fp16 step's program takes half inputs

    @property
    def input_names(self) -> list[str]:
        return self._io.input_names

    def _tensors(self, feeds: Mapping[str, np.ndarray], index: slice | None) -> list[Any]:
        import torch

        out = []
        for spec in self._io.inputs:
            array = np.asarray(feeds[spec.name])
            if index is not None and spec.batch_axis is not None:
                array = np.take(array, range(index.start, index.stop), axis=spec.batch_axis)
            tensor = torch.from_numpy(np.ascontiguousarray(array))
            out.append(tensor.half() if self._half and tensor.is_floating_point() else tensor)
        return out

    def _call(self, tensors: list[Any]) -> list[np.ndarray]:
        return [t.float().numpy() if self._half and t.is_floating_point() else t.numpy()
                for t in self._method.execute(tensors)]

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        first = self._io.inputs[0]
        samples = np.asarray(feeds[first.name]).shape[first.batch_axis] if first.batch_axis is not None else 1
        if samples == self._batch:
            return self._call(self._tensors(feeds, None))
        if samples % self._batch:
            raise ValueError(f"{samples} samples do not split into the program's exported batch {self._batch}")
        parts = [self._call(self._tensors(feeds, slice(s, s + self._batch))) for s in range(0, samples, self._batch)]
        axes = [spec.batch_axis if spec.batch_axis is not None else 0 for spec in self._io.outputs]
        axes += [0] * (len(parts[0]) - len(axes))
        return [np.concatenate([p[i] for p in parts], axis=axes[i]) for i in range(len(parts[0]))]

    def describe(self) -> dict[str, Any]:
        f = self._facts
        return {"runtime": f"executorch {self._version}", "device": f"CPU ({platform.machine()})",
                "delegate": f"{f.get('delegate')} ({f.get('delegated_subgraphs')} subgraph(s))",
                "delegated_nodes": f.get("delegated_nodes"), "not_delegated_nodes": f.get("not_delegated_nodes"),
                "not_delegated_ops": f.get("not_delegated_ops"), "precision": f.get("precision"),
                "int8_qdq_nodes_delegated": f.get("int8_qdq_nodes_delegated"),
                "delegated_compute_by_dtype": f.get("delegated_compute_by_dtype"),
                "export_batch": self._batch, "threads": self._threads}


class BoardExecutorchSession(ExecutorchSession):
    """The same program and batching, run by ExecuTorch's C++ runtime on the aarch64 board
    (:class:`edgecraft.backends.executorch.board.BoardRunner`); timed by the board's clock."""

    def __init__(self, runner: Any, io: ModelIO, facts: dict[str, Any], board: dict[str, Any]) -> None:
        super().__init__(None, io, facts, runner.threads, board["executorch"])
        self._runner, self._board = runner, board

    def _call(self, tensors: list[Any]) -> list[np.ndarray]:
        outputs = self._runner.run([t.numpy() for t in tensors])
        return [o.astype(np.float32) if self._half and o.dtype == np.float16 else o for o in outputs]

    def timed_runs(self, feeds: Mapping[str, np.ndarray], repeats: int) -> list[float]:
        first = self._io.inputs[0]
        samples = np.asarray(feeds[first.name]).shape[first.batch_axis] if first.batch_axis is not None else 1
        if samples != self._batch:  # several calls per run: the host's clock around them (includes the pipe)
            return super().timed_runs(feeds, repeats)
        return [float(s) for s in self._runner.time([t.numpy() for t in self._tensors(feeds, None)], repeats)]

    def describe(self) -> dict[str, Any]:
        facts = {**super().describe(), **self._board}
        facts["runtime"] = f"executorch {self._version} C++ runtime (aarch64, board_runner)"
        facts["device"] = f"{self._board.get('device')} ({self._board.get('qemu_cpu')})"
        facts["timer"] = "steady_clock around Module::forward on the board"
        if self._runner.output_dtypes:
            facts["output_dtypes_on_board"] = self._runner.output_dtypes
        return facts

    def close(self) -> None:
        self._runner.close()
