"""The ``edgecraft`` command line: what CI calls (``edgecraft = "edgecraft.cli:main"``).

One module per job: :mod:`~edgecraft.cli.app` (the application and its global options),
:mod:`~edgecraft.cli.entry` (``main()`` and exit codes), :mod:`~edgecraft.cli.session` (one invocation's state),
:mod:`~edgecraft.cli.root_group` and :mod:`~edgecraft.cli.plugin_commands` (commands plugins add), and the
commands: :mod:`~edgecraft.cli.listing` (``plugins``), :mod:`~edgecraft.cli.plans` (``schema``, ``validate``,
``compile``), :mod:`~edgecraft.cli.run` (``run``, ``gate``, ``report``), :mod:`~edgecraft.cli.search`,
:mod:`~edgecraft.cli.authoring` (``plugin check|new``) and :mod:`~edgecraft.cli.cache`. Importing this package
registers every built-in command on :data:`app`, in the order ``edgecraft --help`` lists them.
"""

from __future__ import annotations

from edgecraft.cli import authoring, cache, listing, plans, run, search
from edgecraft.cli.app import app
from edgecraft.cli.entry import main
from edgecraft.cli.options import CACHE_HELP
from edgecraft.cli.output import summary_line

__all__ = ["CACHE_HELP", "app", "authoring", "cache", "listing", "main", "plans", "run", "search", "summary_line"]
