"""Stopping a run cleanly on Ctrl-C or SIGTERM, with a checkpoint and a way back.

A cluster sends SIGTERM before it kills a job (preemption, the end of its time), a user
presses Ctrl-C. Either signal only *asks* the run to stop: the engine finishes the step
it is in, saves a checkpoint of that step (the state a resumed run continues from
exactly; see ``Trainer.fit``) and raises :class:`RunInterrupted`, which says where the
checkpoint is and how to continue. A second Ctrl-C stops at once, as Python's default.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

#: Exit codes of a command stopped by a signal (128 + the signal's number, as shells use).
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class StopRequest:
    """Set by a signal handler; the training loop looks at it after every step."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __bool__(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return "Ctrl-C" if self.signum == signal.SIGINT else signal.Signals(self.signum).name


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by a signal at a step boundary (a KeyboardInterrupt, so that every
    caller that already stops cleanly on Ctrl-C does so here too)."""

    def __init__(self, reason: str, step: int, total: int, output: Path | None,
                 checkpoint_step: int | None, exit_code: int) -> None:
        super().__init__(reason)
        self.reason, self.step, self.total = reason, step, total
        self.output, self.checkpoint_step, self.exit_code = output, checkpoint_step, exit_code

    def describe(self) -> str:
        """One line: what stopped the run, where, and what was kept."""
        where = f"stopped by {self.reason} at step {self.step}/{self.total}"
        if self.output is None:
            return where
        if self.checkpoint_step is None:
            return f"{where}; no checkpoint yet, so nothing to resume in {self.output}"
        return f"{where}; checkpoint of step {self.checkpoint_step} in {self.output}"


@contextlib.contextmanager
def stop_requests() -> Iterator[StopRequest]:
    """Turn SIGINT and SIGTERM into a :class:`StopRequest` while the block runs.

    Only the main thread may install signal handlers; elsewhere (a thread of a notebook
    or a test runner) the request is never set and signals keep their old handlers.
    """
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if request and signum == signal.SIGINT:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        request.signum = signum

    previous = {s: signal.signal(s, handler) for s in EXIT_CODES}
    try:
        yield request
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
