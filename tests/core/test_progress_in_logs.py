"""Long loops write progress lines into logs (CI jobs, nohup), where a live bar writes nothing until it ends."""

from __future__ import annotations

import io

from edgecraft.rich_progress import RichProgress, duration, progress_line
from rich.console import Console


class FakeClock:
    """Each call is ``step`` seconds after the last: a loop whose items take ``step`` seconds each."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        value = self.now
        self.now += self.step
        return value


def _log_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=False, width=200), out


def test_a_log_gets_one_line_per_interval_with_time_left() -> None:
    console, out = _log_console()
    progress = RichProgress(console, log_interval=60.0, clock=FakeClock(25.0))
    with progress:
        items = list(progress.track(range(10), total=10, description="steps[0] (pruning) recovery 1/2"))
    assert items == list(range(10))
    lines = [line for line in out.getvalue().splitlines() if "recovery" in line]
    # 25 s an item: a line after items 3 (75 s), 6 (150 s) and 9 (225 s); none for the last item, which the
    # caller's own status line reports.
    assert len(lines) == 3, out.getvalue()
    assert "3/10 (30%) · 1m15s · about 2m55s left" in lines[0]
    assert "9/10 (90%) · 3m45s · about 25s left" in lines[2]


def test_a_terminal_gets_the_live_bar_and_no_lines() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    progress = RichProgress(console, log_interval=0.0, clock=FakeClock(25.0))
    with progress:
        assert list(progress.track(range(3), total=3, description="epoch")) == [0, 1, 2]
    assert "about" not in out.getvalue()


def test_a_loop_of_unknown_length_reports_what_it_did() -> None:
    console, out = _log_console()
    progress = RichProgress(console, log_interval=10.0, clock=FakeClock(10.0))
    list(progress.track(iter(range(2)), description="calibration"))
    assert "calibration: 1 done · 10s" in out.getvalue()


def test_durations_read_as_seconds_minutes_or_hours() -> None:
    assert [duration(s) for s in (0.4, 59, 61, 3599, 3720)] == ["0s", "59s", "1m01s", "59m59s", "1h02m"]
    assert progress_line("x", 0, 5, 0.0) == "x: 0/5 (0%) · 0s · about 0s left"
