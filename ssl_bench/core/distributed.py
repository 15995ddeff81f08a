"""One run on several processes: torchrun's environment, the process group, collectives.

``torchrun --nproc_per_node N -m ssl_bench run ...`` starts N processes with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and ``MASTER_ADDR``/``MASTER_PORT`` set; :func:`setup`
reads them and joins the process group (NCCL on CUDA, gloo on CPU). Everything else in
the package asks :func:`current` where it runs, so a single process (no torchrun) is
the world of one and every helper here is then the identity.

The data-parallel contract (see CONTRIBUTING.md, "Several processes"):

* the global batch is the configured one; each rank trains on an equal, contiguous
  shard of its labeled and of its unlabeled rows (:func:`shard`), and gradients are
  averaged by ``DistributedDataParallel`` -- so a loss that is a mean (or ``sum / B``)
  over samples gets the gradient of the global batch's loss;
* a loss that couples samples (SRC-MT's relation matrix) gathers the rows of every rank
  with :func:`gather_rows`, whose backward hands each rank the gradient of its own rows:
  every rank then computes the global loss, and DDP's averaging undoes the repetition;
* state a method keeps from its batches (thresholds, class statistics, memory banks) is
  updated from all ranks' rows (:func:`gather_rows` under ``no_grad``, or
  :func:`mean_over_ranks`), so every rank holds the same state;
* evaluation is split across ranks and gathered (:func:`gather_arrays`) before scoring:
  every rank computes the same metrics, the first alone writes files.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ssl_bench.core.errors import UserError

#: torchrun's variables; a process that has them all is one rank of a distributed run.
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class World:
    """Where this process runs: its rank among ``size`` processes (1: no distribution)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """The rank that writes files and prints (rank 0)."""
        return self.rank == 0


_WORLD = World()


def current() -> World:
    """The world of this process (the world of one unless :func:`setup` joined a group)."""
    return _WORLD


def launched_by_torchrun(environ: dict[str, str] | None = None) -> bool:
    """Whether torchrun (or any launcher setting its variables) started this process."""
    environ = dict(os.environ) if environ is None else environ
    return all(name in environ for name in TORCHRUN_VARIABLES)


def launcher(environ: Mapping[str, str]) -> str:
    """How to start this process again: ``ssl-bench run``, or ``torchrun --nproc_per_node
    N [--nnodes M] -m ssl_bench run`` for a rank of a torchrun run."""
    if not launched_by_torchrun(dict(environ)):
        return "ssl-bench run"
    size = int(environ["WORLD_SIZE"])
    per_node = int(environ.get("LOCAL_WORLD_SIZE") or size)
    nodes = max(1, size // max(per_node, 1))
    return (f"torchrun --nproc_per_node {per_node}"
            + (f" --nnodes {nodes}" if nodes > 1 else "") + " -m ssl_bench run")


def setup(device: str = "auto", timeout_minutes: float = 30.0) -> World:
    """Join the process group torchrun describes (no-op outside torchrun); return the world.

    CUDA ranks use NCCL and the GPU numbered ``LOCAL_RANK``; CPU ranks use gloo. A
    collective that waits longer than ``timeout_minutes`` (a rank that died without its
    launcher noticing) raises instead of hanging for ever.
    """
    global _WORLD
    if not launched_by_torchrun():
        return _WORLD
    rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    if size == 1:
        _WORLD = World(0, 1, 0)
        return _WORLD
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if use_cuda else "gloo",
            timeout=datetime.timedelta(minutes=timeout_minutes))
    _WORLD = World(rank, size, local_rank)
    return _WORLD


def teardown() -> None:
    """Leave the process group (at the end of a distributed run)."""
    global _WORLD
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _WORLD = World()


def shard(count: int, world: World | None = None) -> slice:
    """This rank's contiguous share of ``count`` batch rows; ``count`` must divide evenly.

    Equal shards keep DDP's gradient average equal to the global batch's gradient.
    """
    world = world or current()
    if count % world.size:
        raise UserError(f"{count} rows do not split evenly over {world.size} processes")
    size = count // world.size
    return slice(world.rank * size, (world.rank + 1) * size)


def check_batch(labeled: int, unlabeled: int, world: World | None = None) -> None:
    """Refuse a batch whose labeled or unlabeled part does not split evenly over ranks."""
    world = world or current()
    for flag, count in (("--labeled-batch-size", labeled),
                        ("--batch-size minus --labeled-batch-size", unlabeled)):
        if count % world.size:
            raise UserError(
                f"{flag}: {count} rows per step do not split evenly over {world.size} "
                f"processes; choose a multiple of {world.size} (the global batch is split, "
                "not repeated)")


def gather_rows(tensor: torch.Tensor) -> torch.Tensor:
    """Every rank's ``tensor`` stacked along rows in rank order (the global batch).

    Differentiable: the backward pass returns to each rank the summed gradient of its own
    rows (``torch.distributed.nn.functional.all_gather``). The identity for one process.
    """
    world = current()
    if not world.distributed:
        return tensor
    if tensor.requires_grad:
        return _GatherRows.apply(tensor)
    return _all_gather(tensor)


def _all_gather(tensor: torch.Tensor) -> torch.Tensor:
    if tensor.dtype == torch.bool:  # not every backend gathers booleans
        return _all_gather(tensor.to(torch.uint8)).bool()
    parts = [torch.empty_like(tensor) for _ in range(current().size)]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=0)


class _GatherRows(torch.autograd.Function):
    """All-gather along rows whose backward sums every rank's gradient of the gathered
    rows and keeps this rank's own (``torch.distributed.nn.functional.all_gather`` does
    the same but is deprecated, its successor private). Shards must be equal-sized."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:  # noqa: D102
        ctx.rows = tensor.shape[0]
        return _all_gather(tensor)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = current().rank * ctx.rows
        return grad[start : start + ctx.rows]


def mean_over_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of ``tensor`` over ranks (a batch statistic of the global batch when every
    rank holds the statistic of an equal shard). The identity for one process."""
    if not current().distributed:
        return tensor
    out = tensor.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / current().size


def shard_denominator(count: torch.Tensor) -> torch.Tensor:
    """The denominator of a rank's share of a global ``sum / count`` (``count`` >= 1).

    ``count`` is this rank's share of the count: a rank's ``sum / shard_denominator``,
    averaged over ranks as DDP averages gradients, is the global batch's ``sum / count``.
    For one process it is ``count.clamp_min(1)``.
    """
    size = current().size
    return mean_over_ranks(count).clamp_min(1.0 / size)


def gather_arrays(array: np.ndarray) -> np.ndarray:
    """Every rank's ``array`` concatenated in rank order (evaluation predictions)."""
    world = current()
    if not world.distributed:
        return array
    parts: list[Any] = [None] * world.size
    dist.all_gather_object(parts, array)
    return np.concatenate(parts, axis=0)


def gather_objects(value: Any) -> list[Any]:
    """Every rank's ``value`` in rank order (a one-element list for one process)."""
    world = current()
    if not world.distributed:
        return [value]
    values: list[Any] = [None] * world.size
    dist.all_gather_object(values, value)
    return values


def broadcast_object(value: Any) -> Any:
    """The first rank's ``value``, on every rank (a decision only rank 0 can make)."""
    if not current().distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    """Wait until every rank gets here (no-op for one process)."""
    if current().distributed:
        dist.barrier()


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Give every rank the first rank's buffers of ``module`` (batch-norm statistics)."""
    if not current().distributed:
        return
    for buffer in module.buffers():
        dist.broadcast(buffer.data, src=0)


#: ``Method.data_parallel`` values a distributed run accepts (``None``: refused).
DATA_PARALLEL_MODES = ("global", "per-process")


def check_method_mode(method: str, mode: str | None) -> None:
    """Refuse, in one line, a method that is not declared correct on several processes."""
    if mode is None:
        raise UserError(
            f"method {method!r} does not declare how its batch coupling or state is shared "
            "across processes (Method.data_parallel); run it without torchrun")
    if mode not in DATA_PARALLEL_MODES:
        raise UserError(f"method {method!r}: data_parallel = {mode!r}; use one of "
                        f"{', '.join(map(repr, DATA_PARALLEL_MODES))} or None")


def average_over_ranks(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Loss sums averaged over ranks (the global batch's): the history and the divergence
    checks then agree on every rank. The identity for one process."""
    if not current().distributed or not values:
        return values
    names = sorted(values)
    stacked = torch.stack([torch.as_tensor(values[n], dtype=torch.float32) for n in names])
    return dict(zip(names, mean_over_ranks(stacked), strict=True))


def check_same_everywhere(modules: dict[str, torch.nn.Module], step: int, method: str) -> None:
    """Raise unless every rank holds the same parameters and buffers in ``modules`` (the
    models and the method's state), compared through float64 sums and sums of squares.

    A method declaring ``data_parallel`` that forgot to share a statistic is caught at
    its first evaluation instead of training diverging copies. No-op for one process.
    """
    if not current().distributed:
        return
    local = {f"{owner}.{name}": (float(t.double().sum()), float(t.double().square().sum()))
             for owner, module in modules.items()
             for name, t in module.state_dict().items() if torch.is_tensor(t)}
    every = gather_objects(local)
    differ = sorted(name for name in local if any(rank[name] != local[name] for rank in every))
    if differ:
        more = " ..." if len(differ) > 5 else ""
        raise RuntimeError(
            f"the processes of this run disagree at step {step} on {', '.join(differ[:5])}"
            f"{more}: method {method!r} declares data_parallel but keeps state that is not "
            "shared across ranks (see CONTRIBUTING.md, 'Several processes')")


def data_parallel(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``module`` wrapped in ``DistributedDataParallel`` (parameters and buffers
    broadcast from the first rank now, gradients averaged over ranks in backward)."""
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index if device.index is not None else current().local_rank] \
        if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids)
