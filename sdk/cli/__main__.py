"""``python -m edgecraft.cli ...``: the CLI in this process (the child :mod:`edgecraft.supervise` starts, and
scripts/test and subprocess tests); the ``edgecraft`` command supervises it."""

import sys

from edgecraft.cli.verdict_pipe import adopt_verdict_fd

adopt_verdict_fd()

from edgecraft.cli import main  # noqa: E402  (the descriptor leaves the environment before anything runs)

sys.exit(main())
