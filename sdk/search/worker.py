"""One search trial in a child process (``search.isolate: true``): ``python -m edgecraft.search.worker JOB RESULT``.

The parent (:func:`edgecraft.search.trials.run_trial_isolated`) writes the job (plan, target, recipe,
cache folder) and reads ``[record, state, objective values]`` from RESULT; when the child dies
without writing it (a segfault in a runtime or in training), the trial is recorded as failed with the
signal, and the search goes on.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from edgecraft.assembly.artifacts import ArtifactCache
    from edgecraft.logging_setup import quiet_runtimes
    from edgecraft.progress import NullProgress
    from edgecraft.registry import build_registry
    from edgecraft.search.setup import setup_search
    from edgecraft.search.trials import run_trial_here

    job = json.loads(Path(argv[0]).read_text())
    quiet_runtimes()
    setup = setup_search(Path(job["plan"]), build_registry(), targets=[job["label"]], probe=False)
    cache = ArtifactCache(Path(job["cache_dir"]) if job["cache_dir"] else None, reuse=True)
    outcome = run_trial_here(setup, job["label"], job["values"], cache, NullProgress(), {})
    Path(argv[1]).write_text(json.dumps(list(outcome)))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
