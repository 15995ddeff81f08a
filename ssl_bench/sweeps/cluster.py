"""Sweeps on a cluster: the planned runs as one Slurm job array, through submitit.

``ssl-bench sweep SPEC --executor slurm`` plans the sweep exactly as a local one (the
same fairness checks, finished runs skipped), then submits every remaining run as one
task of a Slurm job array with submitit (the library made for it: ``sbatch`` scripts,
job arrays, pickled calls, requeueing). ``--executor submitit-local`` takes the same
path on this machine (submitit's local executor: real subprocesses, everything but
``sbatch``), which is how the tests exercise it without a cluster.

Preemption and time limits: Slurm signals a job shortly before killing it; submitit
then calls :meth:`RunJob.checkpoint`, which requeues the same call. The run resumes
from its last checkpoint (written at every evaluation together with ``history.csv``),
so no evaluation row is lost or duplicated: the steps since that evaluation are
trained again, identically. A run needing several GPUs is one job with a task per GPU;
each task becomes one DDP rank (``ssl_bench.core.distributed``).

The executors themselves (what ``--executor`` names, and how each builds its submitit
executor and finds its jobs) are a registry in :mod:`ssl_bench.sweeps.executors`.

Every job loads the sweep's ``--plugin`` files before its run, ends as ``busy`` (not as a
failure) when another process holds the run's folder, as the local executor reports it,
and every submission adds its job ids to the run's ``job_ids`` in ``sweep.json`` (under a
lock, so two submissions at once keep both); ``--status`` asks about all of them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

from ssl_bench.core.errors import UserError
from ssl_bench.plugins.sources import loaded_plugin_files
from ssl_bench.runs.locks import waiting_lock
from ssl_bench.sweeps.executors import ClusterOptions, executor, make_executor, options_from_args


def submit_sweep(spec: Any, runs: list[Any], options: ClusterOptions,
                 threads: int | None = None) -> dict[str, Any]:
    """Submit every run of ``runs`` not finished yet as one job array; record the job ids
    in ``sweep.json``; return the submitit jobs by run key (finished runs are skipped,
    failed ones too: a diverged run stays failed until ``--overwrite``)."""
    from ssl_bench.runs.run_dir import RunDir
    from ssl_bench.sweeps.local import write_sweep_record

    options.check()
    folder = Path(spec.results) / spec.name / "submitit"
    status: dict[str, dict[str, Any]] = {}
    todo = []
    for planned in runs:
        run_dir = RunDir(planned.output)
        if run_dir.finished:
            status[planned.key] = {"status": "skipped", "reason": "already finished"}
        elif run_dir.failed:
            status[planned.key] = {"status": "failed", "error": "failed in an earlier sweep: "
                                   f"{run_dir.failure_text()} (--overwrite starts again)"}
        else:
            todo.append(planned)
    submitter = make_executor(options, folder, f"ssl-bench-{spec.name}")
    job = RunJob(loaded_plugin_files())  # a job knows only built-ins: it loads the sweep's
    jobs: dict[str, Any] = {}
    if todo:
        with submitter.batch():  # one job array
            for planned in todo:
                config = (dataclasses.replace(planned.config, threads=threads) if threads
                          else planned.config)  # a machine setting: the run applies it
                jobs[planned.key] = submitter.submit(job, config, str(planned.output),
                                                    spec.keep_checkpoints)
    for key, submitted in jobs.items():
        status[key] = {"status": "queued", "job_id": str(submitted.job_id)}
    record = folder.parent / "sweep.json"
    with waiting_lock(folder.parent / RECORD_LOCK):  # another submission may update it too
        add_job_ids(status, earlier_job_ids(record, options.executor))
        write_sweep_record(spec, runs, status, {"executor": options.executor,
                                                "cluster": options.to_dict(),
                                                "submitit_folder": str(folder)})
    return jobs


#: The lock file concurrent submissions of one sweep take to update ``sweep.json``.
RECORD_LOCK = "sweep.json.lock"


def run_job_ids(run: dict[str, Any]) -> list[str]:
    """A run's job ids in ``sweep.json``, oldest first (older records: one ``job_id``)."""
    ids = run.get("job_ids")
    if isinstance(ids, list):
        return [str(i) for i in ids]
    return [str(run["job_id"])] if run.get("job_id") is not None else []


def earlier_job_ids(record_path: Path, executor: str) -> dict[str, list[str]]:
    """Each run's job ids from the earlier submissions of this sweep to ``executor``;
    none where there are none to keep (a first or a local sweep, an unreadable record)."""
    if not record_path.is_file():
        return {}
    try:
        record = read_sweep_record(record_path)
    except UserError:  # rewritten below: the earlier ids are lost with the garbled file
        return {}
    if record.get("executor") != executor:
        return {}
    return {key: ids for key, run in record["runs"].items() if (ids := run_job_ids(run))}


def add_job_ids(status: dict[str, dict[str, Any]], earlier: dict[str, list[str]]) -> None:
    """Give each run's status every job id it had (``job_ids``, oldest first), so a later
    submission does not hide the jobs of an earlier one; ``job_id`` is the newest."""
    for key, outcome in status.items():
        ids = earlier.get(key, []) + ([outcome["job_id"]] if "job_id" in outcome else [])
        if ids:
            outcome["job_ids"] = list(dict.fromkeys(ids))
            outcome.setdefault("job_id", ids[-1])


def read_sweep_record(path: Path) -> dict[str, Any]:
    """``sweep.json``, checked to be a sweep record (an object whose ``runs`` maps each run
    to an object with its ``path``); else a one-line :class:`UserError` naming the file."""
    if not path.is_file():
        raise UserError(f"{path} does not exist: this sweep was never started")
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable sweep record ({exc})") from None
    problem = _record_problem(record)
    if problem:
        raise UserError(f"{path}: not a sweep record ({problem}); the next sweep command "
                        "of this spec rewrites it")
    return record


def _json_kind(value: Any) -> str:
    """The JSON name of ``value``'s type, for messages about a hand-edited record."""
    kinds = ((bool, "a boolean"), (dict, "an object"), (list, "an array"), (str, "a string"),
             ((int, float), "a number"))
    return next((name for kind, name in kinds if isinstance(value, kind)), "null")


def _record_problem(record: Any) -> str | None:
    """What makes ``record`` no sweep record (None: it is one, as far as --status reads)."""
    if not isinstance(record, dict):
        return f"the file holds {_json_kind(record)}, not an object"
    for name in ("executor", "submitit_folder"):
        if record.get(name) is not None and not isinstance(record[name], str):
            return f"{name!r} is {_json_kind(record[name])}, not a string"
    runs = record.get("runs")
    if not isinstance(runs, dict):
        return f"'runs' is {_json_kind(runs)}, not an object"
    for key, run in runs.items():
        if not isinstance(run, dict):
            return f"run {key!r} is {_json_kind(run)}, not an object"
        if not isinstance(run.get("path"), str):
            return f"run {key!r} has no 'path' string"
        if not isinstance(run.get("status", ""), str):
            return f"the status of run {key!r} is {_json_kind(run['status'])}, not a string"
        ids = run.get("job_ids", [])
        if not (isinstance(ids, list) and all(isinstance(i, (str, int)) for i in ids)) or (
                not isinstance(run.get("job_id", ""), (str, int))):
            return f"the job ids of run {key!r} are not strings"
    return None


def cluster_status(record: dict[str, Any]) -> dict[str, str]:
    """Each run's state, from its folder first (finished, failed, interrupted with a
    checkpoint) and else from the scheduler (queued, running, or its end state)."""
    from ssl_bench.runs.run_dir import RunDir

    folder = record.get("submitit_folder")
    states: dict[str, str] = {}
    for key, run in record["runs"].items():
        run_dir = RunDir(run["path"])
        ids = run_job_ids(run)
        if run_dir.finished:
            states[key] = "finished"
        elif run_dir.failed:
            states[key] = "failed"
        elif ids and folder:
            backend = record.get("executor") or "slurm"
            states[key] = combined_state([_job_state(backend, folder, job_id,
                                                     run_dir.resumable) for job_id in ids])
        else:
            states[key] = run.get("status", "pending")
    return states


#: Scheduler states as a sweep reports them (a job that ended without its run finishing
#: failed); any other state is shown as ``unknown``.
_STATES = {"PENDING": "queued", "REQUEUED": "queued", "CONFIGURING": "queued",
           "RUNNING": "running", "COMPLETING": "running", "COMPLETED": "failed",
           "FAILED": "failed", "CANCELLED": "failed", "TIMEOUT": "failed",
           "PREEMPTED": "queued", "OUT_OF_MEMORY": "failed", "NODE_FAIL": "failed",
           "BOOT_FAIL": "failed", "DEADLINE": "failed",
           "INTERRUPTED": "failed", "FINISHED": "failed"}
#: A run with jobs from several submissions is in the first of these states any of its
#: jobs is in (one trains it, the others found it busy), else in its newest job's state.
_PRECEDENCE = ("running", "queued", "busy")


def scheduler_state(raw: str) -> str:
    """A scheduler's job state as a sweep reports it: ``queued``/``running``/``failed``, or
    ``unknown`` for any other (submitit-local's "NO PROCESS AND NO RESULT": a job this
    process did not start). Slurm's "CANCELLED by 1234" counts as its first word."""
    words = raw.upper().split()
    if not words or (len(words) > 1 and words[1] != "BY"):  # a phrase, not a state
        return "unknown"
    return _STATES.get(words[0], "unknown")


def combined_state(states: list[str]) -> str:
    """One run's state from its jobs' states (oldest first); see :data:`_PRECEDENCE`."""
    return next((state for state in _PRECEDENCE if state in states), states[-1])


def _job_state(backend: str, folder: str, job_id: str, has_checkpoint: bool) -> str:
    """``busy`` (the job found the run's folder held by another process), ``queued``,
    ``running``, ``failed`` (the job ended without the run finishing), or ``unknown``
    (the scheduler cannot be asked, or answers with a state not in :data:`_STATES`)."""
    try:
        job = executor(backend).job(folder, job_id)
        if _job_outcome(job).get("status") == "busy":
            return "busy"
        raw = str(job.state)
    except Exception:  # sacct missing or unreachable: say so rather than guess
        return "unknown (interrupted, has a checkpoint)" if has_checkpoint else "unknown"
    return scheduler_state(raw)


def _job_outcome(job: Any) -> dict[str, Any]:
    """What an ended job's call returned (its result file), or {} (still running, failed
    with an exception, or a result that is no outcome, such as a run's metrics)."""
    from submitit.core.utils import pickle_load

    path = job.paths.result_pickle
    if not path.exists():
        return {}
    try:
        kind, value = pickle_load(path)
    except Exception:  # noqa: BLE001 -- half written or unreadable: no outcome known
        return {}
    return value if kind == "success" and isinstance(value, dict) else {}


class RunJob:
    """One planned run as a submitit job: picklable, requeued on preemption or timeout.

    Each task of the job is one DDP rank when the job has several (one per GPU).
    """

    def __init__(self, plugins: tuple[str, ...] = ()) -> None:
        self.plugins = tuple(plugins)  # the sweep's --plugin files, loaded by every job

    def __call__(self, config: Any, output: str, keep_best: bool) -> dict[str, Any] | None:
        """Train (or resume) the run; a folder another process holds ends it as busy."""
        import time

        from ssl_bench.core import distributed
        from ssl_bench.plugins.sources import load_plugin_files
        from ssl_bench.runs.locks import RunLocked
        from ssl_bench.sweeps.execution import busy_outcome
        from ssl_bench.training.runner import run

        load_plugin_files(getattr(self, "plugins", ()))  # (jobs pickled before: none)
        if _tasks() > 1:  # torchrun's variables from the job's environment
            import submitit

            submitit.helpers.TorchDistributedEnvironment().export()
        distributed.setup(config.device)
        started = time.perf_counter()
        try:
            # (not quiet: the job log gets a line per evaluation and "resuming ... at step")
            return run(config, output, auto=True, quiet=False, keep_best=keep_best)
        except RunLocked as exc:  # another sweep's job trains it: left to that one
            distributed.broadcast_object({"error": str(exc)})  # other ranks stop with it
            print(f"ssl-bench: busy: {exc}", file=sys.stderr, flush=True)
            return busy_outcome(exc, time.perf_counter() - started)
        finally:
            distributed.teardown()

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Called by submitit before Slurm kills the job: requeue the same call; the run
        resumes from its last checkpoint (see module docstring)."""
        import submitit

        return submitit.helpers.DelayedSubmission(RunJob(getattr(self, "plugins", ())),
                                                  *args, **kwargs)


def _tasks() -> int:
    for name in ("SLURM_NTASKS", "SUBMITIT_LOCAL_NTASKS"):
        if os.environ.get(name):
            return int(os.environ[name])
    return 1


def print_status(record_path: Path, console: Any) -> dict[str, str]:
    """The ``--status`` table: one row per run (every job id it had), then the count of
    each state."""
    from collections import Counter

    from rich.table import Table

    record = read_sweep_record(record_path)
    states = cluster_status(record)
    table = Table(title=f"{record_path} ({record.get('executor') or 'local'})")
    for column in ("run", "job", "state"):
        table.add_column(column)
    for key, state in states.items():
        table.add_row(key, ", ".join(run_job_ids(record["runs"][key])), state)
    console.print(table)
    console.print(", ".join(f"{n} {s}" for s, n in sorted(Counter(states.values()).items())),
                  highlight=False)
    return states


def submit_command(spec: Any, runs: list[Any], args: Any, console: Any) -> int:
    """Submit the sweep (``--executor slurm`` / ``submitit-local``); wait if asked."""
    options = options_from_args(args)
    assert options is not None, "submit_command is for executors that submit jobs"
    jobs = submit_sweep(spec, runs, options)
    record = Path(spec.results) / spec.name / "sweep.json"
    if not jobs:
        console.print("nothing to submit: every run is finished (or failed)", highlight=False)
        return 0
    first = str(next(iter(jobs.values())).job_id)
    how = executor(options.executor).submitted_as(first)
    console.print(f"submitted {len(jobs)} run(s) {how}; logs in "
                  f"{Path(spec.results) / spec.name / 'submitit'}; ssl-bench sweep ... "
                  "--status shows their state", highlight=False)
    if not (args.wait or executor(options.executor).always_waits):
        return 0
    for job in jobs.values():
        try:
            job.result()
        except Exception:  # noqa: BLE001 -- reported below from the run folders
            pass
    states = print_status(record, console)
    return submitted_exit_code(states)


def submitted_exit_code(states: dict[str, str]) -> int:
    """The exit code of a sweep waited for: 1 if a run did not finish, as the local
    executor's; a busy run (another process trains it) is not a failure there either."""
    return 1 if any(state not in ("finished", "busy") for state in states.values()) else 0
