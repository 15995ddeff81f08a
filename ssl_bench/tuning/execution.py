"""Where a tuning study's trials run: this process, ``--jobs`` worker processes, or
submitit jobs (Slurm, or submitit's local executor), as a sweep's runs do.

Parallel work is spread across methods, never inside one method's study: TPE proposes a
trial from the trials of its study that came before, and the median pruner compares
with them, so two trials of one study at once would make each choice depend on which
finished first. One study per process keeps every proposal, value and choice what
``--jobs 1`` gives (tested), and the equal budget holds by construction. A process that
runs a study holds ``tuning/<label>/.lock``: another process (a second ``tune``, a job
submitted twice) finds that study busy and leaves it to its holder.

Every process rewrites ``tuning.json`` after each trial from the stored studies, and
``tuned.toml`` once every method has its budget (:func:`~.output.write_outputs`), so a
cluster study that nobody waits for still ends with both.
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue as queue_module
import signal
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from pathlib import Path
from typing import Any

from ssl_bench.core.errors import UserError
from ssl_bench.core.interrupts import RunInterrupted, stop_requests
from ssl_bench.plugins.sources import load_plugin_files, loaded_plugin_files
from ssl_bench.runs.locks import FolderLock, RunLocked
from ssl_bench.tuning.study import Tuning, check_spaces, counted, open_study, recover, run_trial

#: Where submitit keeps a study's job scripts and logs, in the tuning folder.
SUBMITIT_DIR = "submitit"


def _recovered(tuning: Tuning, method: str, label: str, echo: Callable[[str], None]) -> Any:
    study = open_study(tuning, method, label, 0)
    stale = recover(study)
    if stale:
        echo(f"{label}: {stale} trial(s) a stopped study left running are queued again "
             "(their runs resume)")
    return study


def tune_here(tuning: Tuning, methods: list[str], echo: Callable[[str], None]
              ) -> dict[str, dict[str, Any]]:
    """Run the studies in this process, round-robin (the method furthest behind first,
    so a stopped study is balanced too); a study another process holds is left to it.
    The outcome of each study by method (``done`` or ``busy``)."""
    from ssl_bench.tuning.output import write_outputs

    check_spaces(methods)
    outcomes: dict[str, dict[str, Any]] = {}
    with contextlib.ExitStack() as locks:
        labels, studies = {}, {}
        for method in methods:
            label = tuning.label(method)
            try:
                locks.enter_context(FolderLock(tuning.folder / label))
            except RunLocked as exc:
                outcomes[method] = busy(label, exc)
                echo(f"{label}: {outcomes[method]['error']}")
                continue
            labels[method], studies[method] = label, _recovered(tuning, method, label, echo)
        while True:
            done = {m: len(counted(study)) for m, study in studies.items()}
            behind = [m for m in studies if done[m] < tuning.settings.trials]
            if not behind:
                break
            lowest = min(done[m] for m in behind)
            for method in (m for m in behind if done[m] == lowest):
                studies[method] = open_study(tuning, method, labels[method], lowest)
                run_trial(tuning, method, labels[method], studies[method], lowest, echo)
                write_outputs(tuning)
    for method in studies:
        outcomes[method] = {"status": "done"}
    write_outputs(tuning)
    return outcomes


def tune_one(tuning: Tuning, method: str, echo: Callable[[str], None],
             stopping: Callable[[], bool] = lambda: False) -> dict[str, Any]:
    """Run one method's study to its budget under its lock (a worker's or a job's part);
    ``stopping`` is asked before each trial. Its outcome, ``done`` or ``busy``."""
    from ssl_bench.tuning.output import write_outputs

    label = tuning.label(method)
    try:
        lock = FolderLock(tuning.folder / label).acquire()
    except RunLocked as exc:
        return busy(label, exc)
    try:
        study = _recovered(tuning, method, label, echo)
        while not stopping():
            index = len(counted(study))
            if index >= tuning.settings.trials:
                break
            study = open_study(tuning, method, label, index)
            run_trial(tuning, method, label, study, index, echo)
            write_outputs(tuning)
    finally:
        lock.release()
    write_outputs(tuning)
    return {"status": "done"}


def busy(label: str, exc: RunLocked) -> dict[str, Any]:
    """The outcome of a study another process is running."""
    return {"status": "busy", "error": f"the {label} study is being run by another process "
            f"(pid {exc.holder or 'unknown'}); it is left to that one"}


# -- --jobs: worker processes ----------------------------------------------------------------
def _study_in_worker(tuning: Tuning, method: str, plugins: tuple[str, ...]) -> dict[str, Any]:
    """One method's study in a worker process (which knows only built-in methods until it
    loads the ``--plugin`` files); every line goes to the parent through the queue."""
    from ssl_bench.sweeps.execution import worker_report, worker_stopping

    if worker_stopping():
        return {"status": "pending"}
    try:
        load_plugin_files(plugins)
        return tune_one(tuning, method, worker_report, worker_stopping)
    except RunInterrupted as exc:
        return {"status": "interrupted", "signal": int(exc.signum), "error": exc.describe()}
    except KeyboardInterrupt:  # a second Ctrl-C: stopped at once
        return {"status": "interrupted", "signal": int(signal.SIGINT),
                "error": "stopped by a second Ctrl-C"}
    except UserError as exc:
        return {"status": "failed", "error": str(exc)}
    except Exception as exc:  # noqa: BLE001 -- reported with its traceback by the parent
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()}


def tune_in_workers(tuning: Tuning, methods: list[str], jobs: int,
                    echo: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """Run the methods' studies in up to ``jobs`` worker processes, one study each; on
    Ctrl-C/SIGTERM every worker stops its trial with a checkpoint (it resumes when the
    command is run again). The outcome of each study by method."""
    from ssl_bench.sweeps.execution import abandon, terminate_workers, worker_pool

    check_spaces(methods)
    for method in methods:  # the store and every study exist before two processes race
        open_study(tuning, method, tuning.label(method), 0)  # to create them
    tuning = dataclasses.replace(tuning, quiet=True)  # (one progress bar per worker clashes)
    outcomes: dict[str, dict[str, Any]] = {}
    pool, lines = worker_pool(min(jobs, len(methods)))
    plugins = loaded_plugin_files()

    def drain() -> None:
        while True:
            try:
                echo(lines.get_nowait())
            except queue_module.Empty:
                return

    try:
        with stop_requests() as request:
            pending: dict[Future, str] = {
                pool.submit(_study_in_worker, tuning, method, plugins): method
                for method in methods}
            stopping = False
            while pending:
                if request and not stopping:
                    stopping = True
                    terminate_workers()
                finished, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                drain()
                for future in finished:
                    method = pending.pop(future)
                    try:
                        outcomes[method] = future.result()
                    except Exception as exc:  # noqa: BLE001 -- the worker itself died
                        outcomes[method] = {"status": "failed",
                                            "error": f"worker crashed: {exc}"}
    except BaseException:  # a second Ctrl-C: do not wait for the trials
        abandon(pool)
        raise
    pool.shutdown(wait=True)
    drain()
    return outcomes


# -- --executor slurm / submitit-local ----------------------------------------------------
class StudyJob:
    """One method's study as a submitit job: picklable, requeued on preemption or timeout
    (the requeued job finds the trial it was in left running, queues its parameters again
    and resumes its run from the last checkpoint)."""

    def __init__(self, plugins: tuple[str, ...] = ()) -> None:
        self.plugins = tuple(plugins)

    def __call__(self, tuning: Tuning, method: str) -> dict[str, Any]:
        load_plugin_files(self.plugins)
        outcome = tune_one(tuning, method, lambda line: print(line, flush=True))
        if outcome["status"] == "busy":
            print(f"ssl-bench: busy: {outcome['error']}", flush=True)
        return outcome

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(StudyJob(self.plugins), *args, **kwargs)


def submit_studies(tuning: Tuning, methods: list[str], options: Any) -> dict[str, Any]:
    """Submit one job per method whose study is short of its budget; the jobs by method."""
    from ssl_bench.sweeps.executors import make_executor

    check_spaces(methods)
    if options.gpus_per_run > 1:
        raise UserError(f"--gpus-per-run {options.gpus_per_run}: a study runs its trials one "
                        "after another on one GPU (--gpus-per-run 0 or 1); tune several "
                        "methods at once instead")
    short = [m for m in methods if len(counted(open_study(tuning, m, tuning.label(m), 0)))
             < tuning.settings.trials]
    if not short:
        return {}
    executor = make_executor(options, tuning.folder / SUBMITIT_DIR,
                             f"ssl-bench-tune-{tuning.spec.name}")
    job = StudyJob(loaded_plugin_files())
    with executor.batch():  # one job array
        jobs = {method: executor.submit(job, tuning, method) for method in short}
    return jobs


def job_outcome(job: Any) -> dict[str, Any]:
    """A finished job's outcome (a job that raised is a failed study)."""
    try:
        return job.result()
    except Exception as exc:  # noqa: BLE001 -- submitit wraps the job's own error
        text = str(exc).strip().splitlines()
        return {"status": "failed", "error": text[-1] if text else type(exc).__name__,
                "log": str(Path(job.paths.stderr))}
