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

Ctrl-C or SIGTERM (a cluster's preemption) stops the whole sweep as it stops one run: the
runs in progress save a checkpoint of their current step, no further run starts, and
:class:`SweepInterrupted` reports what was kept; the same command continues the sweep.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssl_bench.core.atomic import atomic_write_json
from ssl_bench.core.errors import UserError
from ssl_bench.core.interrupts import EXIT_CODES, StopRequest, stop_requests
from ssl_bench.core.threads import default_threads
from ssl_bench.runs.locks import LOCK, holder_of
from ssl_bench.runs.run_dir import BEST, RunDir
from ssl_bench.sweeps.execution import NOT_STARTED, execute, run_in_workers, stop_on
from ssl_bench.sweeps.plan import (  # re-exported: the planning half of a sweep
    SPEC_KEYS,
    STATUSES,
    VARIED,
    PlannedRun,
    SweepSpec,
    check_same_parallelism,
    check_same_splits,
    fairness_key,
    make_spec,
    overridden_defaults,
    plan,
    read_spec,
)
from ssl_bench.tracking import prepare_experiment

__all__ = ["SPEC_KEYS", "STATUSES", "VARIED", "PlannedRun", "SweepInterrupted", "SweepResult",
           "SweepSpec", "check_same_splits", "fairness_key", "make_spec", "overridden_defaults",
           "plan", "print_summary", "read_spec", "remove_sweep", "run_sweep"]


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

    @property
    def interrupted(self) -> list[str]:
        return [k for k, s in self.status.items() if s["status"] == "interrupted"]


class SweepInterrupted(KeyboardInterrupt):
    """A sweep stopped by Ctrl-C or SIGTERM once its running runs had saved checkpoints."""

    def __init__(self, result: SweepResult, request: StopRequest) -> None:
        super().__init__(request.name)
        self.result, self.reason = result, request.name
        self.exit_code = EXIT_CODES[request.signum]  # type: ignore[index]

    def describe(self) -> str:
        """One line: what stopped the sweep, what was kept and how to go on."""
        kept = []
        for key in self.result.interrupted:
            outcome = self.result.status[key]
            at = outcome.get("checkpoint_step")
            kept.append(f"{key} (checkpoint of step {at}/{outcome['total']})" if at is not None
                        else f"{key} (no checkpoint of this run yet)")
        pending = self.result.count("pending")
        return (f"sweep stopped by {self.reason}: {len(kept)} run(s) stopped"
                + (f": {', '.join(kept)}" if kept else "")
                + f"; {pending} not started. The same command continues the sweep "
                "(finished runs are skipped, stopped ones resume from their checkpoint)")


def share_the_gpu(runs: list[PlannedRun], jobs: int) -> list[PlannedRun]:
    """``runs`` with ``memory_share`` 1/``jobs`` where ``jobs`` of them share one CUDA
    device (``--device cuda``) and the spec sets no share of its own."""
    if jobs < 2:
        return runs
    return [dataclasses.replace(planned, config=dataclasses.replace(
                planned.config, memory_share=1 / jobs))
            if planned.config.device == "cuda" and not planned.config.memory_share
            else planned for planned in runs]


def run_sweep(spec: SweepSpec, runs: list[PlannedRun], *, jobs: int = 1,
              threads: int | None = None, quiet: bool = False,
              provenance: dict[str, Any] | None = None) -> SweepResult:
    """Execute ``runs``: skip finished ones, resume interrupted ones, record failures
    (and, in ``sweep.json``, the code ``provenance`` it runs: ``code_provenance``)."""
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
    prepare_experiment(runs[0].config.log, runs[0].config.experiment)
    jobs = max(1, jobs)
    threads = threads or runs[0].config.threads or default_threads(jobs)
    runs = share_the_gpu(runs, jobs)
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
        write_sweep_record(spec, runs, status, {"jobs": jobs, "threads_per_job": threads,
                                                **({"code": provenance} if provenance else {})})

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
        elif outcome["status"] == "interrupted":
            line += f" -- stopped by {outcome['reason']} at step {outcome['step']}"
            if outcome["checkpoint_step"] is not None:
                line += f", checkpoint of step {outcome['checkpoint_step']} kept"
        if not quiet:
            progress.console.print(line, highlight=False, soft_wrap=True)
        write_record()

    with progress, stop_requests() as request:
        if jobs == 1:
            for planned in todo:
                if request:
                    break
                outcome = execute(planned, spec.keep_checkpoints, report, threads)
                finished(planned, outcome)
                stop_on(outcome, request)
        else:
            run_in_workers(spec, todo, jobs, threads, report, finished, request)
    if request:
        for planned in runs:
            status.setdefault(planned.key, dict(NOT_STARTED))
        write_record()
        raise SweepInterrupted(SweepResult(status, record_path), request)
    for planned in runs:  # busy runs another process finished meanwhile are done now
        outcome = status.get(planned.key, {})
        if outcome.get("status") == "busy" and RunDir(planned.output).finished:
            status[planned.key] = {"status": "skipped", "reason": "finished by another "
                                   f"process (pid {outcome.get('holder') or 'unknown'})"}
            write_record()
    problems = check_same_splits(runs) + check_same_parallelism(runs)
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
    from ssl_bench.plugins.registry import method_registry

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
    shown = [s for s in STATUSES if result.count(s) or s not in ("interrupted", "pending")]
    for column in shown:
        table.add_column(column, justify="right")
    table.add_row(*(str(result.count(s)) for s in shown))
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

