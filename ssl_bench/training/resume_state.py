"""What a resume checkpoint holds, and how a trainer is put back exactly where it was.

Everything that decides the rest of a run is saved: models, optimiser, schedule, scaler,
the batch sampler, every random generator (augmentations', torch's, CUDA's), the history,
the best-validation records, the divergence baseline and the method's own state. A
resumed run is bit-identical to an uninterrupted one (``tests/test_engine.py``).
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from ssl_bench.core import distributed
from ssl_bench.core.errors import UserError
from ssl_bench.training.loss_interval import LossInterval


class Resumable(Protocol):
    """What a checkpoint saves and restores: the attributes of
    :class:`~ssl_bench.training.trainer.Trainer` that decide the rest of a run (each one
    with ``state_dict``/``load_state_dict`` or a plain value)."""

    step: int
    student: torch.nn.Module
    teacher: torch.nn.Module | None
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: Any
    sampler: Any
    generator: torch.Generator
    history: list[dict[str, Any]]
    evaluator: Any
    elapsed: float
    monitor: Any
    method: Any
    interval: LossInterval
    logs: Any


def trainer_state(trainer: Resumable) -> dict[str, Any]:
    """The resume state of ``trainer`` (written as ``checkpoint.pt`` at every evaluation)."""
    return {
        "step": trainer.step,
        "student": trainer.student.state_dict(),
        "teacher": None if trainer.teacher is None else trainer.teacher.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "scaler": trainer.scaler.state_dict(),
        "sampler": trainer.sampler.state_dict(),
        **_random_states(trainer),
        "history": trainer.history,
        **trainer.evaluator.state_dict(),
        "elapsed": trainer.elapsed,
        "divergence": trainer.monitor.state_dict(),
        "method": trainer.method.state_dict(),
        "interval": trainer.interval.state_dict(),
        "step_logs": trainer.logs.state_dict(),
    }


def restore_trainer(trainer: Resumable, state: dict[str, Any]) -> None:
    """Put ``trainer`` back in ``state`` (from :func:`trainer_state`)."""
    trainer.step = state["step"]
    trainer.student.load_state_dict(state["student"])
    if trainer.teacher is not None:
        trainer.teacher.load_state_dict(state["teacher"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.scheduler.load_state_dict(state["scheduler"])
    trainer.scaler.load_state_dict(state["scaler"])
    trainer.sampler.load_state_dict(state["sampler"])
    _restore_random_states(trainer, state)
    trainer.history = state["history"]
    trainer.evaluator.load_state_dict(state)
    trainer.elapsed = state["elapsed"]
    trainer.monitor.load_state_dict(state.get("divergence"))
    if state.get("method") is not None:
        trainer.method.load_state_dict(state["method"])
    # Checkpoints taken at an evaluation (all of them before Ctrl-C/SIGTERM saved one
    # between two) start a new interval of loss sums.
    trainer.logs.load_state_dict(state.get("step_logs"))
    trainer.interval.load_state_dict(state.get("interval"))


def _random_states(trainer: Resumable) -> dict[str, Any]:
    """The augmentation generator's, torch's and CUDA's random states; on several
    processes one per rank, in rank order (a collective: every rank must call it)."""
    states = {
        "generator": trainer.generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
    if not distributed.current().distributed:
        return states
    per_rank = distributed.gather_objects(states)
    return {"ranks": len(per_rank),
            **{name: [rank[name] for rank in per_rank] for name in states}}


def _restore_random_states(trainer: Resumable, state: dict[str, Any]) -> None:
    world = distributed.current()
    ranks = state.get("ranks", 1)
    if ranks != world.size:
        raise UserError(
            f"cannot resume: the checkpoint was written by {ranks} process(es) and this run "
            f"has {world.size}; resume with torchrun --nproc_per_node {ranks}"
            if ranks > 1 else
            f"cannot resume: the checkpoint was written by one process and this run has "
            f"{world.size}; resume it without torchrun")
    if ranks > 1:
        state = {name: state[name][world.rank] for name in ("generator", "torch_rng",
                                                             "cuda_rng")}
    # RNG states are CPU byte tensors, whatever map_location moved them to.
    trainer.generator.set_state(state["generator"].cpu())
    torch.set_rng_state(state["torch_rng"].cpu())
    if state.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
