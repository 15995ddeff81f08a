"""Where a sweep's runs (and ``tune``'s studies) execute: the executors, by name.

``--executor NAME`` picks one. ``local`` runs them in processes of this machine
(``--jobs``); ``slurm`` submits every run as one job array through submitit, and
``submitit-local`` takes the same path on this machine without sbatch. Executors are a
registry like methods (:func:`register_executor`, entry-point group
``ssl_bench.executors``): a new backend is an :class:`Executor` subclass that builds a
submitit-style executor (``batch()``, ``submit()``) and finds a job again by its id.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ssl_bench.core.errors import UserError
from ssl_bench.plugins.registry import executor_registry

__all__ = ["ClusterOptions", "Executor", "add_cluster_arguments", "executor",
           "options_from_args", "parse_sbatch", "register_executor"]


def register_executor(name: str) -> Callable[[type], type]:
    """Class decorator: make an :class:`Executor` subclass available as ``--executor name``."""
    return executor_registry.register(name)


def executor(name: str) -> Executor:
    """The executor ``name`` (an unknown one is a one-line error listing the known ones)."""
    return executor_registry.get(name)()


@dataclass(frozen=True)
class ClusterOptions:
    """What a cluster sweep asks of the scheduler for each run (``ssl-bench sweep`` flags)."""

    executor: str = "slurm"
    partition: str | None = None
    account: str | None = None
    time_min: float = 24 * 60
    gpus_per_run: int = 1
    cpus_per_run: int = 8
    mem_gb: float | None = None
    array_parallelism: int = 64
    sbatch: dict[str, str] = field(default_factory=dict)

    def check(self) -> None:
        if not executor(self.executor).submits:
            raise UserError(f"--executor: {self.executor!r} is not a cluster executor; use "
                            f"one of {', '.join(executor_registry.names())}")
        if not self.time_min > 0:
            raise UserError(f"--time must be > 0 minutes, got {self.time_min}")
        for flag, value in (("--cpus-per-run", self.cpus_per_run),
                            ("--array-parallelism", self.array_parallelism)):
            if value < 1:
                raise UserError(f"{flag} must be at least 1, got {value}")
        if self.gpus_per_run < 0:
            raise UserError(f"--gpus-per-run must be >= 0, got {self.gpus_per_run}")
        if self.mem_gb is not None and self.mem_gb <= 0:
            raise UserError(f"--mem-gb must be > 0, got {self.mem_gb}")

    @property
    def tasks_per_run(self) -> int:
        """One task per GPU (one DDP rank each); one task for a CPU run."""
        return max(self.gpus_per_run, 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Executor:
    """Where runs execute. Subclasses that submit jobs implement :meth:`make` and
    :meth:`job`; the class docstring's first line is what ``ssl-bench list`` shows."""

    #: False: the runs execute in processes of this machine (``--jobs``), not as jobs.
    submits: ClassVar[bool] = True
    #: True: a submission always waits for its jobs (they live in this process).
    always_waits: ClassVar[bool] = False

    def make(self, options: ClusterOptions, folder: Path, name: str) -> Any:
        """A submitit-style executor writing its scripts and logs in ``folder``."""
        raise NotImplementedError

    def job(self, folder: str, job_id: str) -> Any:
        """The submitted job ``job_id`` again (its ``state`` and result files)."""
        raise NotImplementedError

    def submitted_as(self, first_job_id: str) -> str:
        """How a submission names its jobs in the line it prints."""
        return f"as {getattr(self, 'registry_name', type(self).__name__)} jobs"


@register_executor("local")
class LocalProcesses(Executor):
    """Processes on this machine (--jobs; the default)."""

    submits = False


class SubmititExecutor(Executor):
    """The submitit executors: ``cluster`` is submitit's name for the backend."""

    cluster: ClassVar[str]

    def make(self, options: ClusterOptions, folder: Path, name: str) -> Any:
        try:
            import submitit
        except ImportError:
            raise UserError(f"--executor {options.executor} needs submitit: pip install "
                            "'ssl-bench[cluster]' (or pip install submitit)") from None
        try:
            made = submitit.AutoExecutor(folder=folder, cluster=self.cluster)
        except RuntimeError as exc:  # no srun: not on a Slurm cluster
            raise UserError(f"--executor {options.executor}: {exc} (submit from a machine of "
                            "the cluster, or use --executor submitit-local to try the sweep "
                            "here)") from None
        made.update_parameters(**self.parameters(options, name))
        return made

    def parameters(self, options: ClusterOptions, name: str) -> dict[str, Any]:
        """The parameters every submitit backend takes (whole minutes: submitit's
        AutoExecutor refuses a float, which ``--time`` gives)."""
        return dict(name=name, timeout_min=math.ceil(options.time_min),
                    tasks_per_node=options.tasks_per_run, nodes=1)


@register_executor("slurm")
class Slurm(SubmititExecutor):
    """One Slurm job array through submitit (requeued on preemption or timeout)."""

    cluster = "slurm"

    def parameters(self, options: ClusterOptions, name: str) -> dict[str, Any]:
        parameters = super().parameters(options, name)
        parameters.update(cpus_per_task=options.cpus_per_run,
                          slurm_array_parallelism=options.array_parallelism,
                          slurm_signal_delay_s=120)
        if options.gpus_per_run:
            parameters["gpus_per_node"] = options.gpus_per_run
        if options.mem_gb is not None:
            parameters["mem_gb"] = options.mem_gb
        if options.partition:
            parameters["slurm_partition"] = options.partition
        if options.account:
            parameters["slurm_account"] = options.account
        if options.sbatch:
            parameters["slurm_additional_parameters"] = dict(options.sbatch)
        if options.tasks_per_run > 1:  # a rank that fails ends its job at once
            parameters["slurm_srun_args"] = ["--kill-on-bad-exit=1"]
        return parameters

    def job(self, folder: str, job_id: str) -> Any:
        import submitit

        return submitit.SlurmJob(folder=folder, job_id=job_id)

    def submitted_as(self, first_job_id: str) -> str:
        return f"as job array {first_job_id.split('_')[0]}"


@register_executor("submitit-local")
class SubmititLocal(SubmititExecutor):
    """The Slurm path on this machine, without sbatch (always waits for its jobs)."""

    cluster = "local"
    always_waits = True

    def job(self, folder: str, job_id: str) -> Any:
        import submitit

        return submitit.LocalJob(folder=folder, job_id=job_id)

    def submitted_as(self, first_job_id: str) -> str:
        return "as local submitit jobs"


def parse_sbatch(text: str | None) -> dict[str, str]:
    """``--sbatch "qos=high,constraint=a100"`` -> extra ``#SBATCH --qos=high`` lines."""
    extra: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--sbatch: {item!r} is not KEY=VALUE (e.g. qos=high)")
        extra[key.strip().lstrip("-")] = value.strip()
    return extra


def make_executor(options: ClusterOptions, folder: Path, name: str) -> Any:
    """The submitit-style executor of ``options.executor``, writing in ``folder``."""
    return executor(options.executor).make(options, folder, name)


# -- the command line ---------------------------------------------------------------------
def add_cluster_arguments(parser: Any, status: bool = True) -> None:
    """``ssl-bench sweep`` (and ``tune``) flags choosing where runs execute (local
    processes or Slurm); ``status``: with ``--status`` (a sweep's, from sweep.json)."""
    cards = executor_registry.cards()
    group = parser.add_argument_group("where runs execute (submitit for Slurm)")
    group.add_argument("--executor", choices=list(cards), default="local",
                       help="; ".join(f"{name}: {card.summary[:1].lower()}"
                                      f"{card.summary[1:].rstrip('.')}"
                                      for name, card in cards.items())
                       + " (ssl-bench list --executors)")
    group.add_argument("--partition", help="Slurm partition")
    group.add_argument("--account", help="Slurm account")
    group.add_argument("--time", dest="time_min", type=float, default=ClusterOptions.time_min,
                       help="time limit per run in minutes (a run that reaches it is "
                       "requeued and resumes); default 1440")
    group.add_argument("--gpus-per-run", type=int, default=ClusterOptions.gpus_per_run,
                       help="GPUs per run; more than 1 runs it with DDP, one task per GPU; "
                       "default 1 (0: CPU)")
    group.add_argument("--cpus-per-run", type=int, default=ClusterOptions.cpus_per_run,
                       help="CPUs per task; default 8")
    group.add_argument("--mem-gb", type=float, help="memory per run in GB")
    group.add_argument("--array-parallelism", type=int,
                       default=ClusterOptions.array_parallelism,
                       help="runs of the array at once; default 64")
    group.add_argument("--sbatch", help="extra sbatch options, KEY=VALUE,... "
                       "(e.g. qos=high,constraint=a100)")
    group.add_argument("--wait", action="store_true",
                       help="wait until every submitted run has ended (submitit-local always "
                       "does)")
    if status:
        group.add_argument("--status", action="store_true",
                           help="show each run's state (queued, running, finished, failed) "
                           "from sweep.json, the scheduler and the run folders, and stop")


def options_from_args(args: Any) -> ClusterOptions | None:
    """The cluster options the flags give, or None where the runs execute locally."""
    if not executor(args.executor).submits:
        return None
    options = ClusterOptions(
        executor=args.executor, partition=args.partition, account=args.account,
        time_min=args.time_min, gpus_per_run=args.gpus_per_run,
        cpus_per_run=args.cpus_per_run, mem_gb=args.mem_gb,
        array_parallelism=args.array_parallelism, sbatch=parse_sbatch(args.sbatch))
    options.check()
    return options
