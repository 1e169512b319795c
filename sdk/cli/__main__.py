"""``python -m edgecraft.cli ...``: the same as the ``edgecraft`` command (scripts/test and subprocess tests)."""

import sys

from edgecraft.cli import main

sys.exit(main())
