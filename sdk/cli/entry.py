"""``main()``: run one CLI invocation and turn every way it can end into edgecraft's exit codes.

0 met, 1 contract failed, 2 bad input, 3 plugin or runtime failure, 4 undecided (if the plan says so),
5 met but an integration hook failed, 130/143 interrupted, 141 stdout closed by its reader. Exit 0 only ever
follows a judged set of verdicts and written reports.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING

import typer
from edgecraft.cli.app import app
from edgecraft.cli.session import CliSession
from edgecraft.cli.verdict_pipe import PROG_NAME_ENV
from edgecraft.errors import EXIT_BAD_INPUT, EXIT_OK, EXIT_PLUGIN_FAILURE, EdgecraftError

if TYPE_CHECKING:
    from typer._click.exceptions import ClickException
else:  # typer vendors its own click; at run time its exception base is reached through a public typer class
    ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")

EXIT_BROKEN_PIPE = 128 + 13  # SIGPIPE


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and map errors to exit codes (2 bad input, 3 plugin/runtime failure)."""
    from edgecraft import logging_setup
    from edgecraft.safe_text import clean_text
    from edgecraft.shutdown import EXIT_INTERRUPTED, interrupted_exit, terminate_raises

    # --debug is looked for before parsing too: errors raised while parsing get their traceback.
    session = CliSession(debug="--debug" in (sys.argv[1:] if argv is None else argv))
    try:
        with terminate_raises():
            # Without standalone mode click returns a typer.Exit's code instead of raising it.
            result = app(args=argv, standalone_mode=False, obj=session,
                         prog_name=os.environ.get(PROG_NAME_ENV) or None)
        code = result if isinstance(result, int) else EXIT_OK
        if code == EXIT_INTERRUPTED:  # typer turns KeyboardInterrupt (and our SIGTERM's Terminated) into 130
            return interrupted_exit() or code
        return _refuse_exit_without_verdict(session, code)
    except typer.Exit as exc:
        return _refuse_exit_without_verdict(session, int(exc.exit_code))
    except EdgecraftError as exc:
        # Plain stderr, unwrapped: CI logs and grep must see the message exactly as written.
        sys.stderr.write(f"error ({type(exc).__name__}): {clean_text(exc)}\n")
        _debug_traceback(session, exc)
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        signalled = interrupted_exit()
        if signalled is None:
            sys.stderr.write("interrupted; partial artifacts removed\n")
        return signalled or EXIT_INTERRUPTED
    except BrokenPipeError:
        return _reader_went_away()
    except OSError as exc:
        # The environment failed (disk full, read-only, not a directory): its path and the OS's words.
        where = exc.filename if exc.filename is not None else "(unknown path)"
        sys.stderr.write(f"error (environment): {clean_text(where)}: {clean_text(exc.strerror or exc)}\n")
        _debug_traceback(session, exc)
        return EXIT_PLUGIN_FAILURE
    except SystemExit as exc:
        if isinstance(exc.__context__, BrokenPipeError):  # rich turns a closed stdout into SystemExit(1)
            return _reader_went_away()
        # Only user or plugin code raises SystemExit here (click returns its own exits): never a verdict.
        sys.stderr.write(f"error (unexpected exit): code in this run called sys.exit({clean_text(exc.code)}) "
                         "before every verdict was judged; exit 3, not a verdict\n")
        _debug_traceback(session, exc)
        return EXIT_PLUGIN_FAILURE
    except ClickException as exc:
        # Usage errors (a missing option, a bad choice) arrive here in non-standalone mode.
        exc.show()
        return EXIT_BAD_INPUT
    except Exception:
        # Anything unanticipated is a failure of edgecraft or a library, never a verdict: Python's own
        # exit code for an uncaught exception (1) would read as "a contract failed" in CI.
        import traceback

        traceback.print_exc()
        sys.stderr.write("error (unexpected): the traceback above is a bug or a runtime failure, not a verdict\n")
        return EXIT_PLUGIN_FAILURE
    finally:
        hidden = logging_setup.hidden_summary()
        if hidden:
            sys.stderr.write(f"note: {hidden}\n")
        logging_setup.reset()


def _reader_went_away() -> int:
    """Exit as Unix tools do when the reader of stdout closed it (``edgecraft --help | head``): quietly, 141.

    128 + SIGPIPE is what ``git log | head`` reports under ``set -o pipefail``; it is never 0, so a run whose
    output consumer died is not a verdict (the supervisor then removes its reports), and it is not 3, because
    nothing failed but the pipe. stdout goes to /dev/null so the interpreter's final flush does not fail again.
    """
    with contextlib.suppress(OSError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_BROKEN_PIPE


def _refuse_exit_without_verdict(session: CliSession, code: int) -> int:
    if code == EXIT_OK and session.verdict_pending:
        sys.stderr.write("error (no verdict): the run ended before every verdict was judged and the report "
                         "written; exit 3, not a verdict\n")
        return EXIT_PLUGIN_FAILURE
    return code


def _debug_traceback(session: CliSession, exc: BaseException) -> None:
    if session.debug:
        import traceback

        traceback.print_exception(exc)
