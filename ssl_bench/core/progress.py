"""Training progress: a rich bar on a terminal; elsewhere (a cluster job's log, CI, nohup)
a line every 5% of the run (at most every 10 s, at least every 2 minutes) with steps/s and
an ETA, and one line per evaluation."""

from __future__ import annotations

import math
import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

#: Log lines without a terminal: every this share of the run's steps ...
HEARTBEAT_SHARE = 0.05
#: ... but never closer than the first number of seconds, nor further than the second.
HEARTBEAT_SECONDS = (10.0, 120.0)


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def duration(seconds: float) -> str:
    """``45 s``, ``2 min 07 s``, ``3 h 05 min``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class TrainingProgress:
    """Shows step, loss parts and the latest validation AUC; ``quiet`` shows nothing."""

    def __init__(self, total: int, title: str, quiet: bool = False, console: Console | None = None):
        self.total = total
        self.title = title
        self.quiet = quiet
        self.console = console or Console(stderr=True)
        self.interactive = self.console.is_terminal and not quiet
        self._progress: Progress | None = None
        self._task: Any = None
        self.heartbeat = not quiet and not self.console.is_terminal
        self._since: tuple[int, float] = (0, time.monotonic())  # rate measured from here
        self._last: tuple[int, float] = self._since  # the last log line
        self._losses = ""

    def __enter__(self) -> TrainingProgress:
        if self.interactive:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
                console=self.console,
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.title, total=self.total, info="")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()

    def start_at(self, step: int) -> None:
        self._since = self._last = (step, time.monotonic())
        if self._progress is not None:
            self._progress.update(self._task, completed=step)

    def advance(self, step: int) -> None:
        """Move the bar (cheap: no loss values, no device synchronisation); without a
        terminal, print a line now and then."""
        if self._progress is not None:
            self._progress.update(self._task, completed=step)
        elif self.heartbeat:
            self._beat(step)

    def _beat(self, step: int) -> None:
        now = time.monotonic()
        since = now - self._last[1]
        due = (step - self._last[0] >= max(1, math.ceil(HEARTBEAT_SHARE * self.total))
               and since >= HEARTBEAT_SECONDS[0]) or since >= HEARTBEAT_SECONDS[1]
        if not due or step >= self.total:
            return
        self._last = (step, now)
        rate = (step - self._since[0]) / max(now - self._since[1], 1e-9)
        eta = duration((self.total - step) / rate) if rate > 0 else "unknown"
        losses = f", {self._losses}" if self._losses else ""
        self.console.print(f"[{self.title}] step {step}/{self.total} "
                           f"({100 * step / self.total:.0f}%): {rate:.2f} steps/s, "
                           f"ETA {eta}{losses}", highlight=False, markup=False,
                           soft_wrap=True)

    def step(self, step: int, losses: dict[str, float], val_auc: float | None) -> None:
        """Move the bar and show the latest loss parts and validation AUC."""
        parts = " ".join(f"{k}={v:.3f}" for k, v in losses.items())
        self._losses = parts
        if self._progress is None:
            return
        self._progress.update(
            self._task, completed=step, info=f"{parts} val_auc={_fmt(val_auc)}"
        )

    def evaluation(self, step: int, line: str) -> None:
        if self.quiet:
            return
        if self._progress is not None:
            self._progress.console.print(f"step {step}/{self.total}: {line}", highlight=False)
        else:
            self.console.print(f"[{self.title}] step {step}/{self.total}: {line}",
                               highlight=False, markup=False, soft_wrap=True)

    def message(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text, highlight=False, soft_wrap=True)
