"""MetaSchedule tuning for ``tvm-llvm-host`` (``options.tuning``), with logs cached and reused.

TVM's ``static_shape_tuning`` pipeline does the work (tune every fused task, then apply the best
schedules from the database). It needs static shapes, so symbolic dimensions (the batch) are fixed to 1
by re-importing the ONNX model with a shape dict: a tuned artifact takes batch 1 only (the core falls
back to batch-1 evaluation for such models).

Logs live in ``<log_dir>/<key>/`` where the key hashes the ONNX bytes, the target and the trial budget;
a finished tuning leaves a ``done`` marker and later builds only apply its database (0 trials).
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
from edgecraft.backends.tvm.options import TuningOptions


def default_log_dir() -> Path:
    env = os.environ.get("EDGECRAFT_TUNING_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "edgecraft" / "tvm-tuning"


def tuned_pipeline(model: TvmModel, tuning: TuningOptions) -> Callable[[Any, Any], Any]:
    """A function (mod, target) -> tuned mod, used by ``build_library`` in place of the plain module."""

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
        key = hashlib.sha256(model.onnx_path.read_bytes() + str(target).encode()
                             + f"trials={tuning.trials}".encode()).hexdigest()[:20]
        work_dir = (tuning.log_dir or default_log_dir()) / key
        work_dir.mkdir(parents=True, exist_ok=True)
        done = work_dir / "done"
        trials = 0 if done.exists() else tuning.trials
        model.notes.append(f"MetaSchedule: {'reused' if trials == 0 else 'ran'} {tuning.trials} trials, "
                           f"logs in {work_dir}")
        tuned = relax.get_pipeline("static_shape_tuning", target=target, total_trials=trials,
                                   work_dir=str(work_dir))(mod)
        done.write_text(json.dumps({"trials": tuning.trials, "target": str(target)}) + "\n")
        return tuned

    return tune
