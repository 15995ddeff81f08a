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


class UserInterrupt(KeyboardInterrupt):
    """A Ctrl-C that stops at once (the second one of a run), as ssl-bench raises it: a
    plain ``KeyboardInterrupt`` raised by a method's code is that method's failure
    (:mod:`ssl_bench.method_kit.faults`)."""


@contextlib.contextmanager
def user_interrupts() -> Iterator[None]:
    """Make Ctrl-C raise :class:`UserInterrupt` while the block runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise UserInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by a signal at a step boundary (a KeyboardInterrupt, so that every
    caller that already stops cleanly on Ctrl-C does so here too)."""

    def __init__(self, reason: str, step: int, total: int, output: Path | None,
                 checkpoint_step: int | None, signum: int) -> None:
        super().__init__(reason)
        self.reason, self.step, self.total = reason, step, total
        self.output, self.checkpoint_step, self.signum = output, checkpoint_step, signum

    @property
    def exit_code(self) -> int:
        """The shell's exit status for this signal (130 for SIGINT, 143 for SIGTERM)."""
        return EXIT_CODES[self.signum]

    def describe(self) -> str:
        """One line: what stopped the run, where, and what was kept."""
        where = f"stopped by {self.reason} at step {self.step}/{self.total}"
        if self.output is None:
            return where
        if self.checkpoint_step is None:
            return f"{where}; no checkpoint yet, so nothing to resume in {self.output}"
        return f"{where}; checkpoint of step {self.checkpoint_step} in {self.output}"


#: The stop requests of the ``stop_requests`` blocks now open, outermost first.
_OPEN: list[StopRequest] = []


@contextlib.contextmanager
def stop_requests() -> Iterator[StopRequest]:
    """Turn SIGINT and SIGTERM into a :class:`StopRequest` while the block runs.

    Blocks nest (a sweep around its runs): a signal sets the request of every open block,
    and a block opened after a signal starts with it set, so a run that begins while its
    sweep is stopping stops at its first step (with a checkpoint) instead of training on.
    The first signal names the stop; a later SIGTERM changes nothing (a sweep forwards
    SIGTERM to runs a Ctrl-C may already have reached), a second Ctrl-C stops at once.
    Only the main thread may install signal handlers; elsewhere (a thread of a notebook
    or a test runner) the request is never set and signals keep their old handlers.
    """
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    if _OPEN:
        request.signum = _OPEN[-1].signum

    def handler(signum: int, frame: FrameType | None) -> None:
        if request:
            if signum == signal.SIGINT:  # a second Ctrl-C: stop now
                raise UserInterrupt
            return
        for opened in _OPEN:
            if not opened:
                opened.signum = signum

    previous = {s: signal.signal(s, handler) for s in EXIT_CODES}
    _OPEN.append(request)
    try:
        yield request
    finally:
        _OPEN.remove(request)
        for signum, old in previous.items():
            signal.signal(signum, old)
