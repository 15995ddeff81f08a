"""A method's own code that tries to end the process is a failure of that method.

Plug-in code may call ``sys.exit`` or raise ``KeyboardInterrupt`` (a stray ``exit()`` left
from debugging, a library that "handles" an error by exiting). Left alone, ``SystemExit(0)``
ends ``run`` and ``check-method`` with status 0 and no result, and a whole sweep with
its other runs pending; a ``KeyboardInterrupt`` reads as a user's Ctrl-C. :func:`guarded`
turns both into :class:`MethodEndedProcess`, one line naming the method, its file and
where it happened, which every caller reports as the failure of that run or check.

A real Ctrl-C is never taken for the method's: while a run trains, signals only set a
stop request (:func:`ssl_bench.core.interrupts.stop_requests`), and what ssl-bench itself raises
on a Ctrl-C is a :class:`~ssl_bench.core.interrupts.UserInterrupt`. Where Python's default
handler is in place, a ``KeyboardInterrupt`` may be the user's and passes through; and
whatever a signal handler raises (submitit requeues a preempted job with ``sys.exit``
from its SIGUSR2 handler) is the launcher's, not the method's.
"""

from __future__ import annotations

import contextlib
import inspect
import signal
from collections.abc import Iterator
from typing import Any

from ssl_bench.core.errors import UserError
from ssl_bench.core.interrupts import RunInterrupted, UserInterrupt


class MethodEndedProcess(UserError):
    """A method's code raised ``SystemExit`` or a ``KeyboardInterrupt`` of its own."""


def method_source(method: Any) -> str:
    """The file defining a method class (or instance), for messages."""
    cls = method if isinstance(method, type) else type(method)
    try:
        return inspect.getfile(cls)
    except (TypeError, OSError):
        return cls.__module__


def _signals_are_ours() -> bool:
    """Whether a Ctrl-C now would raise a :class:`UserInterrupt` (or set a stop request)
    rather than Python's plain ``KeyboardInterrupt``."""
    return signal.getsignal(signal.SIGINT) not in (signal.default_int_handler, signal.SIG_DFL,
                                                   None)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r})"
    return "raised KeyboardInterrupt (not a Ctrl-C)"


def _handler_codes() -> set[Any]:
    """The code objects of the Python signal handlers installed now (submitit's requeue
    handler, say, which ends a preempted job with ``sys.exit`` wherever it lands)."""
    codes = set()
    for signum in signal.valid_signals():
        try:
            handler = signal.getsignal(signum)
        except (ValueError, OSError):
            continue
        function = getattr(handler, "__func__", handler)
        code = getattr(function, "__code__", None)
        if code is not None:
            codes.add(code)
    return codes


def _raised_by_signal_handler(exc: BaseException) -> bool:
    """Whether ``exc`` was raised inside a signal handler (not by the method's code)."""
    codes = _handler_codes()
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code in codes:
            return True
        tb = tb.tb_next
    return False


@contextlib.contextmanager
def guarded(method: Any, name: str, where: str) -> Iterator[None]:
    """Run a call into method ``name``'s code (``where``: ``train_step``, ...)."""
    try:
        yield
    except SystemExit as exc:
        if _raised_by_signal_handler(exc):  # a launcher ending the process, on purpose
            raise
        raise MethodEndedProcess(_message(method, name, where, exc)) from None
    except KeyboardInterrupt as exc:
        if (isinstance(exc, (UserInterrupt, RunInterrupted)) or not _signals_are_ours()
                or _raised_by_signal_handler(exc)):
            raise
        raise MethodEndedProcess(_message(method, name, where, exc)) from None


def _message(method: Any, name: str, where: str, exc: BaseException) -> str:
    return (f"method {name!r} ({method_source(method)}) {_describe(exc)} in {where}; a "
            "method must raise an exception, not end the process")
