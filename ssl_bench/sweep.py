"""Sweeps: methods x labeled fractions x seeds on the same data, backbone, budget and splits.

A sweep is a spec (a TOML file in ``benchmarks/`` or command-line lists): the methods,
fractions and seeds, one table of run settings shared by every run, and per-method
options. Fairness holds by construction -- for a given (fraction, seed) every method
gets the same configuration except its own options, hence the same split, labeled
subset, backbone, image size and budget -- and is checked twice: before running (every
planned or already-present run must agree on everything else) and afterwards (the
split files of one (fraction, seed) must hold the same ids for every method).

Runs land in ``<results>/<sweep>/<dataset>/<method>/labeled=<f>/seed=<s>/``; finished
runs are skipped, interrupted ones resume from their checkpoint, failed ones are recorded
with their error while the sweep goes on. ``sweep.json`` beside them records the spec,
the shared settings and the status of every run.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import queue as queue_module
import shutil
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import atomic_write_json
from .errors import UserError
from .locks import LOCK, RunLocked, holder_of
from .progress import TrainingProgress
from .run_dir import BEST, RunDir
from .sweep_plan import (  # re-exported: the planning half of a sweep
    SPEC_KEYS,
    STATUSES,
    VARIED,
    PlannedRun,
    SweepSpec,
    check_same_splits,
    fairness_key,
    make_spec,
    overridden_defaults,
    plan,
    read_spec,
)
from .threads import default_threads

__all__ = ["SPEC_KEYS", "STATUSES", "VARIED", "PlannedRun", "SweepResult", "SweepSpec",
           "check_same_splits", "fairness_key", "make_spec", "overridden_defaults", "plan",
           "print_summary", "read_spec", "remove_sweep", "run_sweep"]

class _StepReporter(TrainingProgress):
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


def _execute(planned: PlannedRun, keep_checkpoints: bool, report: Any,
             threads: int | None) -> dict[str, Any]:
    """Run (or resume) one planned run; never raises for a run's own failure."""
    from .runner import run

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
            progress=_StepReporter(report, planned.key), keep_best=keep_checkpoints)
    except KeyboardInterrupt:
        raise
    except RunLocked as exc:  # another process (another sweep) is training this run
        return {"status": "busy", "holder": exc.holder,
                "error": f"trained by another process (pid {exc.holder or 'unknown'}); "
                         "run the sweep again once it is done to pick the result up",
                "seconds": round(time.perf_counter() - started, 2)}
    except Exception as exc:
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc() if not isinstance(exc, UserError) else "",
                "seconds": round(time.perf_counter() - started, 2)}
    return {"status": "resumed" if resume else "done",
            "seconds": round(time.perf_counter() - started, 2)}


#: The step-report queue of a worker process (set by :func:`_init_worker`).
_WORKER_QUEUE: Any = None
#: How often a worker checks that the sweep that started it is still alive (seconds).
PARENT_POLL_SECONDS = 0.5


def _init_worker(q: Any, parent: int) -> None:
    """Worker start-up: keep the report queue; exit at once if the sweep process dies.

    A worker outliving a killed sweep (kill -9) would keep training into run folders a
    restarted sweep wants; it polls its parent and exits when it is gone (the kernel then
    releases its run-folder lock).
    """
    import threading
    import warnings

    from .errors import show_warning_line

    global _WORKER_QUEUE
    _WORKER_QUEUE = q
    warnings.showwarning = show_warning_line  # one line each, as the command line prints

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(PARENT_POLL_SECONDS)

    threading.Thread(target=watch, name="ssl-bench-parent-watch", daemon=True).start()


def _execute_in_worker(planned: PlannedRun, keep_checkpoints: bool,
                       threads: int) -> dict[str, Any]:
    return _execute(planned, keep_checkpoints, _WORKER_QUEUE.put, threads)


# -- the sweep --------------------------------------------------------------------------
@dataclass
class SweepResult:
    status: dict[str, dict[str, Any]]
    record: Path

    def count(self, status: str) -> int:
        return sum(1 for s in self.status.values() if s["status"] == status)

    @property
    def failed(self) -> list[str]:
        return [k for k, s in self.status.items() if s["status"] == "failed"]

    @property
    def busy(self) -> list[str]:
        """Runs another process was training (left to it; the next sweep picks them up)."""
        return [k for k, s in self.status.items() if s["status"] == "busy"]


def run_sweep(spec: SweepSpec, runs: list[PlannedRun], *, jobs: int = 1,
              threads: int | None = None, quiet: bool = False) -> SweepResult:
    """Execute ``runs``: skip finished ones, resume interrupted ones, record failures."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    jobs = max(1, jobs)
    threads = threads or runs[0].config.threads or default_threads(jobs)
    sweep_dir = Path(spec.results) / spec.name
    record_path = sweep_dir / "sweep.json"
    status: dict[str, dict[str, Any]] = {}
    todo = []
    for planned in runs:
        if RunDir(planned.output).finished:
            status[planned.key] = {"status": "skipped", "reason": "already finished"}
        else:
            todo.append(planned)
    def write_record() -> None:
        write_sweep_record(spec, runs, status, {"jobs": jobs, "threads_per_job": threads})

    write_record()
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console,
        disable=quiet or not console.is_terminal,
    )
    overall = progress.add_task(f"sweep {spec.name}", total=len(runs),
                                completed=len(runs) - len(todo))
    current: dict[str, Any] = {}
    started, ran = time.monotonic(), [0]

    def report(item: tuple[str, int, int]) -> None:
        key, step, total = item
        if key not in current:
            current[key] = progress.add_task(f"  {key}", total=max(total, 1))
        progress.update(current[key], completed=step, total=max(total, 1))

    def finished(planned: PlannedRun, outcome: dict[str, Any]) -> None:
        status[planned.key] = outcome
        if planned.key in current:
            progress.remove_task(current.pop(planned.key))
        progress.advance(overall)
        ran[0] += 1
        done = len(runs) - len(todo) + ran[0]
        line = (f"[{done}/{len(runs)}] {planned.key}: {outcome['status']} "
                f"({outcome.get('seconds', 0):.0f} s)")
        if done < len(runs):  # for logs, where the progress bar's estimate is not shown
            left = (time.monotonic() - started) / ran[0] * (len(runs) - done)
            line += f"; about {_duration(left)} left at this sweep's pace so far"
        if outcome["status"] in ("failed", "busy"):
            line += f" -- {outcome['error']}"
        if not quiet:
            progress.console.print(line, highlight=False, soft_wrap=True)
        write_record()

    with progress:
        if jobs == 1:
            for planned in todo:
                finished(planned, _execute(planned, spec.keep_checkpoints, report, threads))
        else:
            context = multiprocessing.get_context("spawn")
            q = context.Queue()
            with ProcessPoolExecutor(max_workers=jobs, mp_context=context,
                                     initializer=_init_worker,
                                     initargs=(q, os.getpid())) as pool:
                pending: dict[Future, PlannedRun] = {
                    pool.submit(_execute_in_worker, planned, spec.keep_checkpoints,
                                threads): planned
                    for planned in todo
                }
                while pending:
                    done, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                    while True:
                        try:
                            report(q.get_nowait())
                        except queue_module.Empty:
                            break
                    for future in done:
                        planned = pending.pop(future)
                        try:
                            outcome = future.result()
                        except Exception as exc:  # the worker process itself died
                            outcome = {"status": "failed",
                                       "error": f"worker crashed: {type(exc).__name__}: "
                                                f"{exc}"}
                        finished(planned, outcome)
            q.close()
    for planned in runs:  # busy runs another process finished meanwhile are done now
        outcome = status.get(planned.key, {})
        if outcome.get("status") == "busy" and RunDir(planned.output).finished:
            status[planned.key] = {"status": "skipped", "reason": "finished by another "
                                   f"process (pid {outcome.get('holder') or 'unknown'})"}
            write_record()
    problems = check_same_splits(runs)
    if problems:
        for planned in runs:
            status.setdefault(planned.key, {"status": "pending"})
        status["_fairness"] = {"status": "failed", "error": "; ".join(problems)}
        write_record()
    if not spec.keep_checkpoints:
        for planned in runs:
            (planned.output / BEST).unlink(missing_ok=True)
    return SweepResult(status, record_path)


def write_sweep_record(spec: SweepSpec, runs: list[PlannedRun],
                       status: dict[str, dict[str, Any]], execution: dict[str, Any]) -> Path:
    """Write ``sweep.json``: the spec, the settings every run shares, how the sweep was
    executed and each run's status (``pending`` until it has one)."""
    from .registry import method_registry

    own = {p.method: {k: getattr(p.config, k) for k in method_registry.card(p.method).defaults}
           for p in runs}
    shared = fairness_key(runs[0].config.to_dict(), {k for keys in own.values() for k in keys})
    path = Path(spec.results) / spec.name / "sweep.json"
    atomic_write_json(path, {
        "spec": spec.to_dict(),
        "shared_settings": shared,
        "method_settings": {m: keys for m, keys in own.items() if keys},
        "fairness": "every run shares shared_settings; runs differ only in method, "
                    "method_options, labeled and seed; for a (labeled, seed) all methods "
                    "use the same split (checked from their split.json files)",
        **execution,
        "runs": {p.key: {"path": str(p.output), **status.get(p.key, {"status": "pending"})}
                 for p in runs},
    })
    return path


def _duration(seconds: float) -> str:
    """``2 h 05 min`` / ``7 min``: a rough remaining time for a log line."""
    minutes = round(seconds / 60)
    if minutes < 1:
        return "under 1 min"
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def print_summary(result: SweepResult, console: Any) -> None:
    from rich.table import Table

    table = Table(title=f"sweep summary ({result.record})")
    for column in STATUSES:
        table.add_column(column, justify="right")
    table.add_row(*(str(result.count(s)) for s in STATUSES))
    console.print(table)
    for key in result.busy:
        console.print(f"[yellow]busy[/yellow] {key}: {result.status[key]['error']}",
                      highlight=False)
    for key in result.failed:
        console.print(f"[red]failed[/red] {key}: {result.status[key]['error']}",
                      highlight=False)


def remove_sweep(spec: SweepSpec) -> None:
    """Delete a sweep's folder (``--overwrite``), unless another process trains in it."""
    folder = Path(spec.results) / spec.name
    if not folder.exists():
        return
    for lock in sorted(folder.rglob(LOCK)):
        holder = holder_of(lock.parent)
        if holder is not None:
            raise UserError(f"cannot --overwrite sweep {spec.name}: {lock.parent} is being "
                            f"trained by another process (pid {holder or 'unknown'})")
    shutil.rmtree(folder)

