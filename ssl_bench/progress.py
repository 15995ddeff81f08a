"""Training progress: a rich bar on a terminal, one line per evaluation elsewhere (CI)."""

from __future__ import annotations

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


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}"


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
        if self._progress is not None:
            self._progress.update(self._task, completed=step)

    def advance(self, step: int) -> None:
        """Move the bar (cheap: no loss values, no device synchronisation)."""
        if self._progress is not None:
            self._progress.update(self._task, completed=step)

    def step(self, step: int, losses: dict[str, float], val_auc: float | None) -> None:
        """Move the bar and show the latest loss parts and validation AUC."""
        if self._progress is None:
            return
        parts = " ".join(f"{k}={v:.3f}" for k, v in losses.items())
        self._progress.update(
            self._task, completed=step, info=f"{parts} val_auc={_fmt(val_auc)}"
        )

    def evaluation(self, step: int, line: str) -> None:
        if self.quiet:
            return
        if self._progress is not None:
            self._progress.console.print(f"step {step}/{self.total}: {line}", highlight=False)
        else:
            self.console.print(f"[{self.title}] step {step}/{self.total}: {line}", highlight=False)

    def message(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text, highlight=False)
