"""Progress on stderr, so long builds and evaluations show what they are doing.

On a terminal that is a live bar. In a log (a CI job, `nohup`, a pipe) a live bar writes nothing until it ends,
and one recovery epoch of a transformer runs for most of an hour: CI runners cancel jobs that print nothing for
ten minutes, and a person reading the log cannot tell a slow step from a hung one. There each loop writes one line
at most every ``log_interval`` seconds instead: how far it is, how long it took so far and how long it will still
take at that pace.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

T = TypeVar("T")

#: Seconds between two progress lines of one loop in a log: often enough to show a step is alive (well under the
#: ten silent minutes after which CI runners give up), rarely enough that an hour's loop writes 60 lines.
LOG_INTERVAL_S = 60.0


def duration(seconds: float) -> str:
    """``42s``, ``7m05s`` or ``1h02m``: short enough for a progress line."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def progress_line(description: str, done: int, total: int | None, elapsed: float) -> str:
    """One log line of a loop: items done (of how many), time so far and, when the total is known, time left."""
    if not total:
        return f"{description}: {done} done · {duration(elapsed)}"
    left = elapsed / done * (total - done) if done else 0.0
    return (f"{description}: {done}/{total} ({100 * done / total:.0f}%) · {duration(elapsed)} · "
            f"about {duration(left)} left")


class RichProgress:
    def __init__(self, console: Console, *, log_interval: float = LOG_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console
        self.log_interval = log_interval
        self._clock = clock
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), console=console, transient=True)

    def __enter__(self) -> RichProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._progress.__exit__(*exc)

    def track(self, items: Iterable[T], *, total: int | None = None, description: str = "") -> Iterator[T]:
        if not self.console.is_terminal:
            yield from self._track_in_log(items, total, description)
            return
        task = self._progress.add_task(description, total=total)
        try:
            for item in items:
                yield item
                self._progress.advance(task)
        finally:
            self._progress.remove_task(task)

    def _track_in_log(self, items: Iterable[T], total: int | None, description: str) -> Iterator[T]:
        started = last = self._clock()
        for done, item in enumerate(items, start=1):
            yield item
            now = self._clock()
            if now - last >= self.log_interval and (total is None or done < total):
                self.status(progress_line(description, done, total, now - started))
                last = now

    def status(self, message: str) -> None:
        self._progress.console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {message}", highlight=False)
