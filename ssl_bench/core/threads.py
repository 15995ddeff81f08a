"""How many torch threads a run uses, and how many cores this process may really use.

A cluster job or a container often gets fewer cores than the machine has (CPU affinity,
a cgroup quota), and torch's default (every core it sees) then oversubscribes them; on a
busy machine one thread per process is often faster than several (issue 15 measured 0.72
s against 1.8 s per step). ``--threads 0`` (the default) therefore means
``OMP_NUM_THREADS`` when it is set, else the cores this process may use.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

#: Where cgroup v2 (``cpu.max``) and v1 (``cpu/cpu.cfs_quota_us``) publish a CPU quota.
CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """The CPU quota of this process's cgroup in cores (None: no quota or unreadable)."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]  # v2: "max 100000"
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def available_cores(root: Path = CGROUP_ROOT) -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 1
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        cores = min(cores, max(1, math.ceil(limit)))
    return max(1, cores)


def default_threads(jobs: int = 1, environ: dict[str, str] | None = None) -> int:
    """Threads per run when ``--threads`` is 0: ``OMP_NUM_THREADS`` if set to a positive
    integer, else this process's cores divided between ``jobs`` parallel runs."""
    environ = dict(os.environ) if environ is None else environ
    try:
        given = int(environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        given = 0
    if given > 0:
        return given
    return max(1, available_cores() // max(1, jobs))


def set_threads(count: int) -> int:
    """Use ``count`` torch threads (intra-op, and inter-op where torch still allows it:
    only before its first parallel work in this process); return ``count``."""
    import torch

    torch.set_num_threads(count)
    try:
        torch.set_num_interop_threads(count)
    except RuntimeError:  # inter-op pool already started (a second run in one process)
        pass
    return count
