"""Executing a sweep's runs: in this process, or in worker processes, and stopping them.

:func:`execute` runs one planned run and turns its end into an outcome (done, resumed,
busy, failed, interrupted) instead of an exception; :func:`run_in_workers` spreads runs
over ``--jobs`` worker processes (:func:`worker_pool`), forwards their step counts to the
sweep's display and stops them all on Ctrl-C/SIGTERM, each saving a checkpoint of the step
it is in. A worker starts with only the built-in methods: it loads the sweep's
``--plugin`` files before each run (:func:`ssl_bench.plugins.sources.load_plugin_files`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import queue as queue_module
import signal
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from ssl_bench.core.errors import UserError
from ssl_bench.core.interrupts import RunInterrupted, StopRequest, stop_requests
from ssl_bench.core.progress import TrainingProgress
from ssl_bench.plugins.sources import load_plugin_files, loaded_plugin_files
from ssl_bench.runs.locks import RunLocked
from ssl_bench.runs.run_dir import RunDir
from ssl_bench.sweeps.plan import PlannedRun, SweepSpec


class StepReporter(TrainingProgress):
    """Forwards a run's step count to the sweep display (in-process or through a queue)."""

    def __init__(self, report: Any, key: str) -> None:
        super().__init__(0, key, quiet=True)
        self.report = report
        self.key = key

    def start_at(self, step: int) -> None:
        self.report((self.key, step, self.total))

    def advance(self, step: int) -> None:
        self.report((self.key, step, self.total))

    def step(self, step: int, losses: dict[str, float], val_auc: float | None) -> None:
        self.report((self.key, step, self.total))


def execute(planned: PlannedRun, keep_checkpoints: bool, report: Any,
             threads: int | None) -> dict[str, Any]:
    """Run (or resume) one planned run; never raises for a run's own failure."""
    from ssl_bench.training.runner import run

    if threads:
        planned = dataclasses.replace(
            planned, config=dataclasses.replace(planned.config, threads=threads))
    run_dir = RunDir(planned.output)
    if run_dir.failed:  # diverged before: the same settings would diverge again
        return {"status": "failed", "seconds": 0.0,
                "error": f"failed in an earlier sweep: {run_dir.failure_text()} "
                         "(--overwrite starts the sweep again)"}
    resume = run_dir.resumable and not run_dir.finished  # (the run decides under its lock)
    started = time.perf_counter()
    try:
        run(planned.config, planned.output, auto=True, quiet=True,
            progress=StepReporter(report, planned.key), keep_best=keep_checkpoints)
    except RunInterrupted as exc:  # Ctrl-C/SIGTERM: a checkpoint of this step, then stop
        return {"status": "interrupted", "reason": exc.reason, "step": exc.step,
                "total": exc.total, "checkpoint_step": exc.checkpoint_step,
                "signal": int(exc.signum),
                "seconds": round(time.perf_counter() - started, 2)}
    except KeyboardInterrupt:
        raise
    except RunLocked as exc:  # another process (another sweep) is training this run
        return busy_outcome(exc, time.perf_counter() - started)
    except Exception as exc:
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc() if not isinstance(exc, UserError) else "",
                "seconds": round(time.perf_counter() - started, 2)}
    return {"status": "resumed" if resume else "done",
            "seconds": round(time.perf_counter() - started, 2)}


def busy_outcome(exc: RunLocked, seconds: float) -> dict[str, Any]:
    """The outcome of a run whose folder another process holds: ``busy``, left to it (the
    same for a local worker and a cluster job, so both executors report it alike)."""
    return {"status": "busy", "holder": exc.holder,
            "error": f"trained by another process (pid {exc.holder or 'unknown'}); "
                     "run the sweep again once it is done to pick the result up",
            "seconds": round(seconds, 2)}


def plugins_failed(exc: UserError) -> dict[str, Any]:
    """The outcome of a run whose worker could not load the sweep's plug-in files."""
    return {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "traceback": "",
            "seconds": 0.0}


#: The step-report queue of a worker process (set by :func:`init_worker`).
_WORKER_QUEUE: Any = None
#: Set in a worker process by Ctrl-C/SIGTERM, for the worker's whole life: once it is set,
#: the worker starts no further run (see :func:`_run_in_worker`).
_WORKER_STOP = StopRequest()
_WORKER_SIGNALS = contextlib.ExitStack()
#: The outcome of a run a stopping sweep did not start.
NOT_STARTED = {"status": "pending", "reason": "not started: the sweep was stopped"}
#: How often a worker checks that the sweep that started it is still alive (seconds).
PARENT_POLL_SECONDS = 0.5


#: What the worker processes' server imports once (the ``forkserver`` start method): each
#: worker is then a fork of it instead of a fresh interpreter importing torch, timm and
#: scikit-learn again (seconds of CPU per worker, and memory shared between the workers).
WORKER_PRELOAD = ("ssl_bench.training.runner",)


def worker_context() -> multiprocessing.context.BaseContext:
    """``forkserver`` with :data:`WORKER_PRELOAD` where the platform has it, else ``spawn``.

    Never plain ``fork``: the sweep process may hold threads (its display, tracking
    clients) and torch state; the server forks from a process that only imported.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(WORKER_PRELOAD))
    return context


def worker_pool(jobs: int) -> tuple[ProcessPoolExecutor, Any]:
    """``jobs`` worker processes and the queue they report through (:func:`worker_report`).

    The server of a ``forkserver`` context is started once per process and keeps the
    environment and folder of that moment, so each worker takes this process's current
    ones at start-up (:func:`init_worker`), as a spawned worker would.
    """
    context = worker_context()
    reports = context.Queue()
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=init_worker,
                               initargs=(reports, os.getpid(), dict(os.environ), os.getcwd()))
    return pool, reports


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # (exists, under another user: a reused pid)
        return False
    return True


def init_worker(q: Any, parent: int, environment: dict[str, str] | None = None,
                folder: str | None = None) -> None:
    """Worker start-up: the sweep process's environment and folder, the report queue, and
    an exit at once if the sweep process dies.

    A worker outliving a killed sweep (kill -9) would keep training into run folders a
    restarted sweep wants; it polls the sweep process (``parent``) and the process that
    forked it (the sweep, or the fork server, which ends with the sweep) and exits when
    either is gone (the kernel then releases its run-folder lock).
    """
    import threading
    import warnings

    from ssl_bench.core.errors import show_warning_line

    global _WORKER_QUEUE, _WORKER_STOP
    if environment is not None:
        os.environ.clear()
        os.environ.update(environment)
    if folder is not None:
        os.chdir(folder)
    _WORKER_QUEUE = q
    _WORKER_STOP = _WORKER_SIGNALS.enter_context(stop_requests())  # open until it exits
    warnings.showwarning = show_warning_line  # one line each, as the command line prints

    forked_by = os.getppid()

    def watch() -> None:
        while True:
            if os.getppid() != forked_by or not _alive(parent):
                os._exit(1)
            time.sleep(PARENT_POLL_SECONDS)

    threading.Thread(target=watch, name="ssl-bench-parent-watch", daemon=True).start()


def worker_report(item: Any) -> None:
    """Send ``item`` to the process that started this worker (its report queue)."""
    _WORKER_QUEUE.put(item)


def worker_stopping() -> bool:
    """Whether a signal has reached this worker (it then starts nothing new)."""
    return bool(_WORKER_STOP)


def _run_in_worker(planned: PlannedRun, keep_checkpoints: bool, threads: int,
                   plugins: tuple[str, ...] = ()) -> dict[str, Any]:
    """Run one planned run in a worker, unless a signal already stopped this worker; the
    sweep's ``plugins`` files are loaded first (a worker knows only built-ins)."""
    if _WORKER_STOP:
        return dict(NOT_STARTED)
    try:
        load_plugin_files(plugins)
    except UserError as exc:  # e.g. the file was removed since the sweep started
        return plugins_failed(exc)
    try:
        outcome = execute(planned, keep_checkpoints, _WORKER_QUEUE.put, threads)
    except KeyboardInterrupt:  # a second Ctrl-C: stopped at once, without a checkpoint
        _WORKER_STOP.signum = signal.SIGINT
        return {"status": "interrupted", "reason": "a second Ctrl-C", "step": None,
                "total": None, "checkpoint_step": None, "signal": int(signal.SIGINT)}
    if outcome["status"] == "interrupted" and not _WORKER_STOP:
        _WORKER_STOP.signum = outcome["signal"]
    return outcome


def terminate_workers() -> None:
    """SIGTERM to every worker process: each run in one saves a checkpoint of its step."""
    for worker in multiprocessing.active_children():
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signal.SIGTERM)  # type: ignore[arg-type]


def abandon(pool: ProcessPoolExecutor) -> None:
    """A second Ctrl-C: kill every worker at once and leave the pool without waiting."""
    for worker in multiprocessing.active_children():
        worker.kill()
    pool.shutdown(wait=False, cancel_futures=True)


def stop_on(outcome: dict[str, Any], request: StopRequest) -> None:
    """A run stopped by a signal (sent to it alone, or to the sweep) stops the sweep."""
    if outcome["status"] == "interrupted" and not request:
        request.signum = outcome["signal"]


def run_in_workers(spec: SweepSpec, todo: list[PlannedRun], jobs: int, threads: int,
                    report: Any, finished: Any, request: StopRequest) -> None:
    """Run ``todo`` in ``jobs`` worker processes, reporting each outcome to ``finished``.

    Once ``request`` is set (a signal to the sweep, or a run stopped by one) the workers
    get SIGTERM -- their runs save a checkpoint of the step they are in -- and runs not
    yet started are cancelled. A second Ctrl-C kills the workers at once.
    """
    pool, q = worker_pool(jobs)
    stopping = False
    plugins = loaded_plugin_files()
    try:
        pending: dict[Future, PlannedRun] = {
            pool.submit(_run_in_worker, planned, spec.keep_checkpoints, threads,
                        plugins): planned
            for planned in todo
        }
        while pending:
            if request and not stopping:
                stopping = True
                for future in pending:
                    future.cancel()  # (fails for the runs already started or queued)
                terminate_workers()
            done, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            while True:
                try:
                    report(q.get_nowait())
                except queue_module.Empty:
                    break
            for future in done:
                planned = pending.pop(future)
                if future.cancelled():
                    continue
                try:
                    outcome = future.result()
                except Exception as exc:  # the worker process itself died
                    outcome = {"status": "failed",
                               "error": f"worker crashed: {type(exc).__name__}: {exc}"}
                if outcome["status"] != "pending":
                    finished(planned, outcome)
                stop_on(outcome, request)
    except BaseException:  # a second Ctrl-C: do not wait for the runs
        abandon(pool)
        raise
    pool.shutdown(wait=True)
    q.close()
