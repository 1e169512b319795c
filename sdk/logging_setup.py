"""Keep third-party libraries' log lines off the terminal unless ``--verbose``; never lose them.

NNCF, OpenVINO, ONNX Runtime, TVM and torch's ONNX exporter each log in their own way: NNCF attaches
its own stdout handler (``INFO:nncf:...``) and draws rich progress bars on stdout, ONNX Runtime's
C++ logger writes warnings to stderr, TVM and torch use Python loggers and ``warnings``. Under the CLI
(which calls :func:`configure` once) their output is routed to edgecraft's ``edgecraft.thirdparty``
logger at DEBUG instead; warnings among it are counted, and the CLI ends with one line saying how many
were hidden (``--verbose`` shows them as they happen). Library users who never call :func:`configure`
see the libraries' own behaviour, unchanged.

Loggers keep their levels (edgecraft reads some of their INFO records itself, e.g. which layers NNCF's
accuracy restorer reverted): only where the lines go changes.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

#: Python loggers of the libraries edgecraft drives.
THIRD_PARTY_LOGGERS = ("nncf", "openvino", "onnxruntime", "tvm", "torch.onnx", "torch.export", "torch._dynamo",
                       "onnxscript", "torch_pruning", "py.warnings")
DEBUG_LOGGER = "edgecraft.thirdparty"



@dataclass
class _Routing:
    """How this process routes library output: logging is process-wide, so this is too (set by :func:`configure`,
    cleared by :func:`reset`; the CLI configures it once per invocation from its settings' ``verbose``)."""

    configured: bool = False
    verbose: bool = False


_routing = _Routing()
hidden_warnings: Counter[str] = Counter()


class _Forward(logging.Handler):
    """Re-logs a library's record on ``edgecraft.thirdparty.<name>`` at DEBUG, counting its warnings."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a library's malformed log call must not break the run
            message = str(record.msg)
        source = record.name.split(".")[0] if record.name != "py.warnings" else "python warnings"
        if record.levelno >= logging.WARNING:
            hidden_warnings[source] += 1
        logging.getLogger(f"{DEBUG_LOGGER}.{record.name}").debug("%s: %s", record.levelname, message)


def configure(verbose: bool = False) -> None:
    """Set up edgecraft's logging for a CLI invocation (idempotent).

    ``verbose``: every library logs as it would on its own, and edgecraft's DEBUG lines (including
    what it hides otherwise) go to stderr. Otherwise library log records and Python warnings go to
    DEBUG only, counted by :func:`hidden_summary`.
    """
    _routing.configured, _routing.verbose = True, verbose
    hidden_warnings.clear()
    ours = logging.getLogger(DEBUG_LOGGER)
    ours.propagate = False
    for handler in list(ours.handlers):
        ours.removeHandler(handler)
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("debug: %(name)s: %(message)s"))
        ours.addHandler(handler)
        ours.setLevel(logging.DEBUG)
        logging.captureWarnings(False)
        return
    ours.addHandler(logging.NullHandler())
    ours.setLevel(logging.DEBUG)
    logging.captureWarnings(True)
    for name in THIRD_PARTY_LOGGERS:
        quiet_logger(name)


def quiet_logger(name: str) -> None:
    """Route one library logger to the debug log: drop its own terminal handlers, stop propagation."""
    logger = logging.getLogger(name)
    for handler in list(logger.handlers):
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            logger.removeHandler(handler)
    if not any(isinstance(h, _Forward) for h in logger.handlers):
        logger.addHandler(_Forward())
    logger.propagate = False


def is_quiet() -> bool:
    return _routing.configured and not _routing.verbose


def quiet_runtimes() -> None:
    """Quiet what is not a Python logger (call after the runtimes may be imported, before they run):
    ONNX Runtime's C++ logger to errors only, and NNCF's logger again (it installs its stdout handler
    when first imported, possibly after :func:`configure`)."""
    if not is_quiet():
        return
    try:
        import onnxruntime

        onnxruntime.set_default_logger_severity(3)
    except Exception:  # not installed, or an API change: its warnings stay visible, nothing breaks
        pass
    for name in THIRD_PARTY_LOGGERS:
        quiet_logger(name)


class _LineLog(io.StringIO):
    """A text stream that sends every line written to it to the debug log (for libraries that print).

    A StringIO only to be a ``TextIO`` (what ``redirect_stdout`` takes); nothing is kept in its buffer."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self._logger = logging.getLogger(f"{DEBUG_LOGGER}.{name}")
        self._buffer = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._buffer += text
        *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            self._emit(line)
        return len(text)

    def flush(self) -> None:
        pass

    def close_pending(self) -> None:
        if self._buffer:
            self._emit(self._buffer)
            self._buffer = ""

    def _emit(self, line: str) -> None:
        if not line.strip():
            return
        if "WARNING" in line or line.lower().startswith("warning"):
            hidden_warnings["printed output"] += 1
        self._logger.debug("%s", line.rstrip())


@contextlib.contextmanager
def third_party_output(name: str = "stdout") -> Iterator[None]:
    """Around a call into libraries that print (NNCF's progress bars, a strategy's tools): their stdout
    goes to the debug log when the CLI is quiet; otherwise (``--verbose``, or edgecraft used as a library)
    nothing changes."""
    if not is_quiet():
        yield
        return
    quiet_runtimes()
    sink = _LineLog(name)
    with contextlib.redirect_stdout(sink):
        try:
            yield
        finally:
            sink.close_pending()


def hidden_summary() -> str | None:
    """One line about what was hidden, e.g. ``3 warning(s) from libraries hidden (nncf 2, python warnings 1):
    rerun with --verbose to see them``; None when nothing was."""
    if not is_quiet() or not hidden_warnings:
        return None
    total = sum(hidden_warnings.values())
    parts = ", ".join(f"{source} {count}" for source, count in sorted(hidden_warnings.items()))
    return f"{total} warning(s) from libraries hidden ({parts}): rerun with --verbose to see them"


def reset() -> None:
    """Forget :func:`configure` (tests; a long-lived process embedding the CLI)."""
    _routing.configured, _routing.verbose = False, False
    hidden_warnings.clear()
    logging.captureWarnings(False)


__all__ = ["configure", "hidden_summary", "is_quiet", "quiet_logger", "quiet_runtimes", "reset",
           "third_party_output"]
