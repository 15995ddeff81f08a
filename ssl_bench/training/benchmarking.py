"""Measuring training speed: per-step timings, their split into phases, the data path.

Used by ``benchmarks/speed.py`` and ``benchmarks/cache_speed.py``. Timings are medians
over repeats after warm-up; on CUDA every phase boundary synchronises the device (only
while measuring), so each phase is charged its own kernels.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

#: The phases of one training step, in order, as reported by :class:`PhaseTimer`.
PHASES = ("data", "perturb", "student_forward", "teacher_forward", "loss_terms", "backward",
          "optimizer", "ema")


class PhaseTimer:
    """Accumulates wall time per named phase; install as ``trainer.timer``.

    Student and teacher forward passes are timed with module hooks; ``loss_terms`` is
    the rest of the method's ``train_step`` (losses such as the relation matrix).
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.totals: dict[str, float] = defaultdict(float)
        self._hooks: list[Any] = []
        self._forward_start: dict[int, float] = {}
        #: Images through watched forwards: ``trained`` (with gradients) / ``forward_only``.
        self.images: dict[str, int] = defaultdict(int)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        self._sync()
        started = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.totals[phase] += time.perf_counter() - started

    def watch(self, model: nn.Module, phase: str) -> None:
        """Charge ``model``'s forward passes to ``phase`` (taken out of ``method``)."""

        def before(module: nn.Module, args: Any) -> None:
            self._sync()
            self._forward_start[id(module)] = time.perf_counter()
            if args and isinstance(args[0], torch.Tensor):
                kind = "trained" if torch.is_grad_enabled() else "forward_only"
                self.images[kind] += int(args[0].shape[0])

        def after(module: nn.Module, args: Any, output: Any) -> None:
            self._sync()
            self.totals[phase] += time.perf_counter() - self._forward_start.pop(id(module))

        self._hooks += [model.register_forward_pre_hook(before),
                        model.register_forward_hook(after)]

    def close(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()

    def split(self, steps: int) -> dict[str, float]:
        """Milliseconds per step for each phase (forward passes taken out of 'method')."""
        totals = dict(self.totals)
        forwards = totals.get("student_forward", 0.0) + totals.get("teacher_forward", 0.0)
        totals["loss_terms"] = max(0.0, totals.pop("method", 0.0) - forwards)
        return {phase: 1000 * totals.get(phase, 0.0) / steps for phase in PHASES}


def median_seconds(fn: Callable[[], Any], repeats: int, warmup: int = 1,
                   device: torch.device | None = None) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        fn()
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def interleaved_step_times(trainers: dict[str, Any], rounds: int, steps: int,
                           warmup: int) -> dict[str, float]:
    """Median seconds per step of each trainer, measured in interleaved rounds.

    Machines are noisy: timing the methods one after another charges a slow minute to
    whichever ran then. Rounds that cycle through all methods spread the noise evenly, so
    the ratios between methods are fair.
    """
    for trainer in trainers.values():
        for _ in range(warmup):
            trainer.train_step()
    samples: dict[str, list[float]] = {name: [] for name in trainers}
    for _ in range(rounds):
        for name, trainer in trainers.items():
            samples[name].append(median_seconds(trainer.train_step, steps, 0, trainer.device))
    return {name: statistics.median(values) for name, values in samples.items()}


def phase_split(trainer: Any, steps: int, images: dict[str, float] | None = None
                ) -> dict[str, float]:
    """Milliseconds per step spent in each phase, over ``steps`` timed steps; ``images``,
    if given, receives the images per step through forward passes with gradients
    (``trained``) and without (``forward_only``)."""
    timer = PhaseTimer(trainer.device)
    timer.watch(trainer.student, "student_forward")
    if trainer.teacher is not None:
        timer.watch(trainer.teacher, "teacher_forward")
    trainer.timer = timer
    try:
        for _ in range(steps):
            trainer.train_step()
    finally:
        timer.close()
        trainer.timer = None
    if images is not None:
        images.update({kind: timer.images.get(kind, 0) / steps
                       for kind in ("trained", "forward_only")})
    return timer.split(steps)


def step_timings(trainer: Any, steps: int, warmup: int) -> dict[str, Any]:
    """ms per step (median), images/s, and the phase split of one trainer."""
    median = median_seconds(trainer.train_step, steps, warmup, trainer.device)
    return {"ms_per_step": 1000 * median, "images_per_s": trainer.config.batch_size / median,
            "phases_ms": phase_split(trainer, steps)}


def data_path_throughput(cached: Any, decoding: Any, num_images: int, batch: int,
                         repeats: int, seed: int = 0) -> dict[str, float]:
    """images/s of fetching random training batches from the cache vs decoding files."""
    rng = np.random.default_rng(seed)
    batches = [rng.choice(num_images, batch, replace=False) for _ in range(repeats + 1)]
    results = {}
    for name, source in (("cache", cached), ("decode", decoding)):
        queue = iter(batches * 2)
        seconds = median_seconds(lambda s=source, q=queue: s.take(next(q)), repeats)
        results[f"{name}_images_per_s"] = batch / seconds
    results["ratio"] = results["cache_images_per_s"] / results["decode_images_per_s"]
    return results
