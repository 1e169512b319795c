"""The child process of a peak-memory measurement: ``python -m edgecraft.verify.memory_probe ...``.

It builds the plugin registry, loads the target's runtime through the backend (``Backend.load_runtime``),
resets the process's high-water mark, then (unless ``--zero``) loads the artifact through the backend's
own ``load()`` and runs the feeds through ``Session.run``, and prints one JSON line. Going through the
backend plugin (not a runtime edgecraft knows) makes it work for any backend, a third party's included.
A fresh process per measurement, because a high-water mark only ever grows and runtimes keep caches,
arenas and thread pools alive for the life of the process.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from pathlib import Path
from typing import Any

from edgecraft.verify.memory import PROBE_MARKER, process_memory, reset_high_water_mark


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m edgecraft.verify.memory_probe",
                                     description="Peak memory one artifact adds to a fresh process (JSON on stdout).")
    parser.add_argument("--target", required=True, help="Target name (from the backend registry).")
    parser.add_argument("--options", default="{}", help="The target's options as JSON.")
    parser.add_argument("--artifact", type=Path, help="The artifact folder (omit with --zero).")
    parser.add_argument("--feeds", type=Path, required=True, help="A .npz with one array per model input.")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3, help="Inferences after loading (the first one warms up).")
    parser.add_argument("--zero", action="store_true", help="Load the runtime but no model: the zero.")
    return parser.parse_args(argv)


def probe(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    from edgecraft.backend import Backend
    from edgecraft.registry import build_registry

    registry = build_registry()
    backend, info = registry.target(args.target)
    options = info.options_model.model_validate(json.loads(args.options))
    with np.load(args.feeds) as npz:
        feeds = {name: npz[name] for name in npz.files}
    overridden = type(backend).load_runtime is not Backend.load_runtime
    backend.load_runtime(args.target, options)
    gc.collect()
    before = process_memory()
    reset = reset_high_water_mark()
    stats: dict[str, Any] = {}
    if not args.zero:
        if args.artifact is None:
            raise SystemExit("--artifact is required without --zero")
        session = backend.load(args.artifact, args.target, options, args.threads)
        for _ in range(max(1, args.runs)):
            session.run(feeds)
        stats = session.memory_stats()
    after = process_memory()
    return {"zero": bool(args.zero), "reset": reset, "rss_start_bytes": before["rss"], "hwm_start_bytes": before["hwm"],
            "rss_end_bytes": after["rss"], "hwm_bytes": after["hwm"], "maxrss_bytes": after["maxrss"],
            "runtime_stats": stats, "load_runtime_overridden": overridden}


def main(argv: list[str] | None = None) -> int:
    result = probe(_parse(argv))
    sys.stdout.flush()
    print(PROBE_MARKER + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
