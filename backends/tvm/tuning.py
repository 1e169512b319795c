"""MetaSchedule tuning (``options.tuning``), with logs cached and reused.

``tvm-llvm-host``: TVM's ``static_shape_tuning`` pipeline does the work on this machine (tune every fused
task, then apply the best schedules from the database).

``tvm-aarch64`` (``device: tracker``): candidates must run where the code will, so the same passes are
driven with MetaSchedule's own RPC runner: each candidate is compiled here, cross-linked into an aarch64
shared library (:func:`export_aarch64`, run in MetaSchedule's builder processes) and timed on a board the
TVM RPC tracker hands out for ``tracker_key``. A plain ``device: rpc`` board is refused: the RPC runner
asks a tracker for its boards. On an emulated board (``board_emulated``) the timings only rank candidate
schedules for QEMU; they never become a latency verdict, and the artifact's metadata says what it was
tuned against.

Tuning needs static shapes, so symbolic dimensions (the batch) are fixed to 1 by re-importing the ONNX
model with a shape dict: a tuned artifact takes batch 1 only (the core falls back to batch-1 evaluation).

Logs live in ``<log_dir>/<key>/`` where the key hashes the ONNX bytes, the target, the board kind (the
tracker key, and whether it is emulated) and the trial budget: boards of one kind share their logs, other
kinds never see them. A finished tuning leaves a ``done`` marker and later builds only apply its database.
Pinned: apache-tvm-ffi 0.1.14.post1 (0.1.15.x segfaults as tuning starts, in ToJSONGraph).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgecraft.backends.tvm.compile import TvmModel
from edgecraft.backends.tvm.options import AArch64Options, TuningOptions

#: Seconds MetaSchedule's builder may take per candidate (import TVM in a worker, compile, cross-link).
BUILD_TIMEOUT_S = 600
#: Seconds an RPC session for one candidate may last on the board (an emulated board is slow).
SESSION_TIMEOUT_S = 600


def default_log_dir() -> Path:
    env = os.environ.get("EDGECRAFT_TUNING_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "edgecraft" / "tvm-tuning"


def export_aarch64(mod: Any) -> str:
    """MetaSchedule builder export: link a candidate into an aarch64 shared library the board can load
    (the default export makes a tar of objects that the board would have to link with its own compiler)."""
    import tempfile

    from edgecraft.backends.tvm.toolchain import CROSS_CXX
    from tvm.support import cc

    path = os.path.join(tempfile.mkdtemp(prefix="edgecraft-ms-"), "candidate.so")
    mod.export_library(path, fcompile=cc.cross_compiler(CROSS_CXX))
    return path


def _fill_from_host(tensor: Any) -> None:
    """Random data for a candidate's argument, made here and copied to the board."""
    import numpy as np

    dtype = np.dtype(str(tensor.dtype))
    shape = tuple(int(d) for d in tensor.shape)
    rng = np.random.default_rng(0)
    data = rng.uniform(-1, 1, size=shape) if dtype.kind == "f" else rng.integers(0, 8, size=shape)
    tensor.copyfrom(np.ascontiguousarray(data.astype(dtype)))


def alloc_arguments(session: Any, device: Any, args_info: Any, alloc_repeat: int) -> list[Any]:
    """MetaSchedule runner argument allocation that works on a board running only TVM's runtime library.

    The default fills arguments with ``tvm.contrib.random.random_fill_for_measure`` on the board, which the
    runtime-only library (``TVM_USE_RUNTIME_LIB=1``, what boards and the emulated device run) does not
    have: every candidate failed with "Module has no function". Filling from the host works everywhere.
    """
    from tvm.s_tir.meta_schedule.runner.utils import alloc_argument_common

    return alloc_argument_common(_fill_from_host, device, args_info, alloc_repeat)


def board_kind(options: AArch64Options) -> str:
    """What tuning logs are shared by: the tracker key, and whether its boards are emulated."""
    return f"{options.tracker_key}{' (emulated)' if options.board_emulated else ''}"


def _tune_on_boards(mod: Any, target: Any, trials: int, work_dir: Path, options: AArch64Options) -> Any:
    from tvm import relax
    from tvm.s_tir import meta_schedule as ms

    with target:
        mod = relax.transform.DecomposeOpsForInference()(mod)
        mod = relax.transform.CanonicalizeBindings()(mod)
        mod = relax.get_pipeline("zero")(mod)
        if trials > 0:
            rpc = ms.runner.RPCConfig(tracker_host=options.tracker_host, tracker_port=options.tracker_port,
                                      tracker_key=options.tracker_key, session_timeout_sec=SESSION_TIMEOUT_S)
            ms.relax_integration.tune_relax(
                mod, params={}, target=target, work_dir=str(work_dir), max_trials_global=trials,
                num_trials_per_iter=min(trials, 16),
                builder=ms.builder.LocalBuilder(f_export=export_aarch64, max_workers=1, timeout_sec=BUILD_TIMEOUT_S),
                runner=ms.runner.RPCRunner(rpc_config=rpc, evaluator_config=ms.runner.EvaluatorConfig(
                    number=1, repeat=3, min_repeat_ms=0), f_alloc_argument=alloc_arguments, max_workers=1))
        return relax.transform.MetaScheduleApplyDatabase(str(work_dir))(mod)


def tuned_pipeline(model: TvmModel, tuning: TuningOptions,
                   boards: AArch64Options | None = None) -> Callable[[Any, Any], Any]:
    """A function (mod, target) -> tuned mod, used by ``build_library`` in place of the plain module.

    ``boards``: tune on the boards of a TVM RPC tracker (``tvm-aarch64``); None: on this machine."""

    def tune(mod: Any, target: Any) -> Any:
        import onnx
        from tvm import relax
        from tvm.relax.frontend.onnx import from_onnx

        static = {spec["name"]: [d if d else 1 for d in spec["shape"]] for spec in model.inputs}
        if any(None in spec["shape"] or 0 in spec["shape"] for spec in model.inputs):
            mod = from_onnx(onnx.load(str(model.onnx_path)), shape_dict=static, keep_params_in_input=False)
            for spec in model.inputs:
                spec["shape"] = static[spec["name"]]
            model.notes.append("tuned for static shapes " + json.dumps(static))
        kind = board_kind(boards) if boards is not None else "host"
        key = hashlib.sha256(model.onnx_path.read_bytes() + str(target).encode()
                             + f"trials={tuning.trials}".encode() + f"boards={kind}".encode()).hexdigest()[:20]
        work_dir = (tuning.log_dir or default_log_dir()) / key
        work_dir.mkdir(parents=True, exist_ok=True)
        done = work_dir / "done"
        trials = 0 if done.exists() else tuning.trials
        where = "this machine" if boards is None else (
            f"boards with key {kind} from the tracker at {boards.tracker_host}:{boards.tracker_port}")
        model.notes.append(f"MetaSchedule: {'reused' if trials == 0 else 'ran'} {tuning.trials} trials timed on "
                           f"{where}, logs in {work_dir}")
        if boards is not None and boards.board_emulated:
            model.notes.append("tuned against emulated boards: candidate timings ranked schedules for QEMU, not "
                               "for a real ARM core")
        if boards is None:
            tuned = relax.get_pipeline("static_shape_tuning", target=target, total_trials=trials,
                                       work_dir=str(work_dir))(mod)
        else:
            tuned = _tune_on_boards(mod, target, trials, work_dir, boards)
        done.write_text(json.dumps({"trials": tuning.trials, "target": str(target), "boards": kind}) + "\n")
        return tuned

    return tune
