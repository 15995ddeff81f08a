"""The training engine: everything a run does between preparation and its records.

:class:`Trainer` runs the two-stream loop of a :class:`~ssl_bench.training.prepare.PreparedRun`
with the EMA teacher, lambda(t), periodic evaluation of student and teacher on
validation and test, best-validation selection and resumable checkpoints. A method only
supplies its losses (:meth:`Method.train_step`).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ssl_bench.config.budget import should_stop
from ssl_bench.core import distributed
from ssl_bench.core.interrupts import RunInterrupted, StopRequest
from ssl_bench.core.progress import TrainingProgress
from ssl_bench.method_kit.faults import guarded
from ssl_bench.method_kit.method import Batch, StepContext, StepOutput
from ssl_bench.runs.integrity import load_verified
from ssl_bench.runs.run_dir import BEST, CHECKPOINT, METRICS, RunDir
from ssl_bench.tracking import Trackers
from ssl_bench.training.batches import RANK_SEED_STRIDE, BatchMaker
from ssl_bench.training.build import (
    amp_dtype,
    build_models,
    build_optimizer,
    build_scheduler,
    seed_everything,
    step_callables,
)
from ssl_bench.training.divergence import DivergenceMonitor
from ssl_bench.training.evaluation import Evaluator
from ssl_bench.training.loss_interval import LossInterval
from ssl_bench.training.method_logs import StepLogs, method_info
from ssl_bench.training.metrics import metric_names
from ssl_bench.training.prepare import PreparedRun
from ssl_bench.training.records import metrics_record, save_test_predictions
from ssl_bench.training.resume_state import restore_trainer, trainer_state
from ssl_bench.training.schedules import (
    ConsistencySchedule,
    EmaUpdater,
    check_teacher_statistics,
    ema_decay_at,
)

#: How often (in steps) loss values are read back for the progress bar.
REFRESH_EVERY = 10


@contextlib.contextmanager
def _untimed(phase: str) -> Iterator[None]:
    yield


class Trainer:
    """Runs one prepared configuration; owns models, optimiser, sampler and records."""

    def __init__(self, prepared: PreparedRun, run_dir: RunDir | None = None,
                 progress: TrainingProgress | None = None) -> None:
        self.p = prepared
        self.config = prepared.config
        self.method = prepared.method
        self.run_dir = run_dir
        self.progress = progress
        self.device = prepared.device
        self.task = prepared.task.to(self.device)
        seed_everything(self.config.seed)
        if self.config.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        self.world = distributed.current()
        if self.world.distributed:
            distributed.check_method_mode(self.config.method, self.method.data_parallel)
        self.backbone, self.student, self.teacher = build_models(prepared)
        if self.world.distributed:  # same models everywhere, different dropout per rank
            seed_everything(self.config.seed + RANK_SEED_STRIDE * self.world.rank)
        self.method.to(self.device)
        with guarded(self.method, self.config.method, "setup"):
            self.method.setup(method_info(prepared))
        self.optimizer = build_optimizer(self.config, self.student, self.method)
        self.ema = (EmaUpdater(self.teacher, self.student, self.config.teacher_buffers)
                    if self.teacher is not None else None)
        self.scheduler = build_scheduler(self.config, self.optimizer, prepared.total_steps,
                                         prepared.steps_per_epoch)
        self.amp_dtype = amp_dtype(self.config, self.device)
        self.scaler = torch.amp.GradScaler(
            "cuda", enabled=self.amp_dtype == torch.float16)
        self.batches = BatchMaker(prepared, self.method, self.device)
        # (the sampler, pipeline, generator and labels live in the batch maker)
        self.sampler = self.batches.sampler
        self.pipeline = self.batches.pipeline
        self.generator = self.batches.generator
        self.labels = self.batches.labels
        self.num_labeled = self.batches.num_labeled
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.elapsed = 0.0
        self.lambda_schedule = ConsistencySchedule(
            self.config.consistency_weight, self.config.rampup * prepared.total_steps,
            prepared.steps_per_epoch, self.config.rampup_per_epoch,
            math.ceil(self.config.unsupervised_start * prepared.steps_per_epoch))
        self.monitor = DivergenceMonitor(self.config.lr, self.config.consistency_weight)
        self.evaluator = Evaluator(prepared, self.task, self.pipeline, self._autocast,
                                   self.monitor, self._message)
        self.logs = StepLogs(self.task.kind)
        self.keep_best = True
        #: Set by a signal (see :mod:`ssl_bench.core.interrupts`): stop after the current step.
        self.stop_request: StopRequest | None = None
        #: The losses since the last evaluation (part of a checkpoint taken between two).
        self.interval = LossInterval()
        #: TensorBoard/MLflow (``--log``; the runner opens them on the first rank only).
        self.trackers = Trackers()
        #: Called after every evaluation with (step, history row), e.g. by ``tune`` to
        #: prune a trial; may raise to end the run (its checkpoint is written first).
        self.on_evaluation: Callable[[int, dict[str, Any]], None] | None = None
        #: Why training ended: ``budget`` (all its steps) or ``patience`` (early stopping).
        self.stopped = "budget"
        #: Optional phase timer (``ssl_bench.training.benchmarking.PhaseTimer``) for speed reports.
        self.timer: Any = None
        self.student_call, self.teacher_call = step_callables(
            self.student, self.teacher, self.config, self.world, self.device)

    # -- helpers ------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _message(self, text: str) -> None:
        if self.progress:
            self.progress.message(text)

    def models(self) -> dict[str, nn.Module]:
        return {"student": self.student, **({"teacher": self.teacher} if self.teacher else {})}

    def consistency_weight(self, step: int) -> float:
        return self.lambda_schedule(step)

    def next_batch(self) -> Batch:
        """The next training batch (see :class:`~ssl_bench.training.batches.BatchMaker`)."""
        return self.batches.next(self.timer or _untimed)

    def train_step(self) -> dict[str, torch.Tensor]:
        """One optimisation step of the student, then the EMA update of the teacher.

        Returns the loss terms (detached); the method's logs accumulate in ``self.logs``.
        """
        timer = self.timer or _untimed
        batch = self.next_batch()
        ctx = StepContext(self.student_call, self.teacher_call, self.task,
                          self.consistency_weight(self.step), self.step)
        with timer("method"), self._autocast(), guarded(self.method, self.config.method,
                                                        "train_step"):
            output = self.method.train_step(batch, ctx)
        if not isinstance(output, StepOutput):
            output = StepOutput(output)
        losses = output.losses
        with timer("backward"):
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(losses["total"]).backward()
        with timer("optimizer"):
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
        if self.world.distributed:  # every rank keeps the first rank's statistics
            distributed.broadcast_buffers(self.student)
        if self.teacher is not None:
            with timer("ema"):
                self.ema(ema_decay_at(self.step, self.config.ema_decay))
            distributed.broadcast_buffers(self.teacher)
        self.logs.add(output, self.labels, self.batches.unlabeled_rows, self.batches.scorable)
        self.step += 1
        if self.step == 1 and self.teacher is not None and self.config.teacher_buffers == "own":
            check_teacher_statistics(self.teacher, self.student, self.config.method)
        return {name: value.detach() for name, value in losses.items()}

    def evaluate(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Metrics of every model on validation and test (see :class:`Evaluator`)."""
        return self.evaluator.evaluate(self.models(), self.step)

    def _history_row(self, results: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
        row: dict[str, Any] = {
            "step": self.step,
            "epoch": round(self.step / self.p.steps_per_epoch, 4),
            "lr": self.scheduler.get_last_lr()[0],
            "consistency_weight": self.consistency_weight(self.step),
            "seconds": round(self.elapsed, 3),
        }
        row.update({f"loss_{name}": mean for name, mean in self.interval.means().items()})
        row.update(self.logs.flush())
        for model, parts in results.items():
            for part, metrics in parts.items():
                for key in metric_names(self.task.kind):
                    row[f"{part}_{model}_{key}"] = metrics.get(key)
        return row

    # -- checkpoints (the layout lives in ssl_bench/training/resume_state.py) -----------------
    def state_dict(self) -> dict[str, Any]:
        return trainer_state(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        restore_trainer(self, state)

    def facts(self) -> dict[str, Any]:
        """What ``config.json`` records that only the built trainer knows."""
        return {"num_labeled_per_batch": self.batches.global_labeled,
                "processes": self.world.size,
                "fused_optimizer": bool(self.optimizer.defaults.get("fused")),
                "weight_source": self.backbone.weight_source}

    def resume_from(self, path: Path) -> None:
        """Continue from a checkpoint, refusing a damaged one (checksum, readable zip)."""
        state = load_verified(path, self.device, way_out=(
            "cannot resume; pass --overwrite (instead of --resume) to start the run again"))
        self.load_state_dict(state)

    # -- the loop -----------------------------------------------------------------
    def fit(self, stop_after: int | None = None) -> dict[str, Any] | None:
        """Train to the end (or until ``stop_after`` steps, for tests); return metrics."""
        total = self.p.total_steps
        last_val: float | None = None
        if self.history:
            last_val = self.history[-1].get(f"val_{self._lead()}_{self.config.selection_metric}")
        if self.progress:
            self.progress.start_at(self.step)
        started = time.perf_counter() - self.elapsed
        for model in self.models().values():
            model.train()
        if self.step == 0:
            self.monitor.start(self.student)
        if self.history and self.patience_used_up():  # stopped, killed before finishing
            self.stopped = "patience"
            return self._finish()
        while self.step < total:
            self.interval.add(self.train_step())
            at_eval = self.step % self.p.eval_every == 0 or self.step == total
            if self.progress:
                self.progress.advance(self.step)
            # The first step's losses are the divergence baseline: read back at once.
            if self.step % REFRESH_EVERY == 0 or at_eval or self.step == 1:
                means = self.interval.read_back()  # (synchronises the device: not every step)
                self.monitor.check_losses(self.step, means)
                self.monitor.check_parameters(self.step, self.student,
                                              gradients=not self.scaler.is_enabled())
                if self.progress:
                    self.progress.step(self.step, means, last_val)
                self.trackers.log_step(self.step, means)
            if at_eval:
                distributed.check_same_everywhere(
                    {**self.models(), "method": self.method}, self.step, self.config.method)
                self.elapsed = time.perf_counter() - started
                results = self.evaluate()
                improved = self.evaluator.select(self.models(), results, self.step)
                self.history.append(self._history_row(results))
                self.trackers.log_evaluation(self.step, self.history[-1])
                self.interval = LossInterval()  # (the checkpoint below starts a new one)
                last_val = results[self._lead()]["val"].get(self.config.selection_metric)
                self._record(improved, results)
                if self.on_evaluation is not None:
                    self.on_evaluation(self.step, self.history[-1])
                if self.patience_used_up():
                    self.stopped = "patience"
                    self._message(f"early stopping at step {self.step}: no better validation "
                                  f"{self.config.selection_metric} for "
                                  f"{self.config.patience} evaluations")
                    break
            if self.stop_request and self.step < total:
                self.elapsed = time.perf_counter() - started
                raise self._interrupted(at_eval)
            if stop_after is not None and self.step >= stop_after:
                return None
        return self._finish()

    def patience_used_up(self) -> bool:
        """Early stopping (``patience``), judged from the history and best records only
        (both in the checkpoint), so a resumed run keeps the patience it had used."""
        best = {name: record["best_step"] for name, record in self.evaluator.best.items()}
        return should_stop(self.config.patience, [int(r["step"]) for r in self.history],
                           best, self.config.report_model)

    def _interrupted(self, checkpointed: bool) -> RunInterrupted:
        """Save a checkpoint of this step (unless the evaluation just did) and say so.

        Under torchrun the ranks may see a signal at different steps, and a checkpoint is
        collective, so there only the last evaluation's checkpoint is kept.
        """
        assert self.stop_request is not None
        saved: int | None = None
        if self.run_dir is not None:
            if checkpointed:
                saved = self.step
            elif not self.world.distributed:
                self.run_dir.save(CHECKPOINT, self.state_dict())
                saved = self.step
            elif self.history:
                saved = int(self.history[-1]["step"])
        return RunInterrupted(self.stop_request.name, self.step, self.p.total_steps,
                              None if self.run_dir is None else self.run_dir.path, saved,
                              self.stop_request.signum)

    def _lead(self) -> str:
        return "teacher" if self.teacher is not None else "student"

    def _record(self, improved: list[str], results: dict[str, Any]) -> None:
        if self.progress:
            self.progress.evaluation(self.step, self.evaluator.describe(results, improved))
        # Gathering the ranks' random states is collective: every rank takes part.
        state = self.state_dict() if self.run_dir is not None or self.world.distributed else None
        if self.run_dir is None:
            return
        self.run_dir.write_history(self.history)
        if improved and self.keep_best:
            self.run_dir.save(BEST, self.evaluator.best_weights())
        self.run_dir.save(CHECKPOINT, state)

    def summary(self) -> dict[str, Any]:
        return self.evaluator.summary()

    def _finish(self) -> dict[str, Any]:
        self.evaluator.score_test_at_best(self.models())
        metrics = metrics_record(self.p, self.step, self.elapsed, self.summary(),
                                 self.batches.global_labeled, self.stopped)
        if self.run_dir is not None:
            probs, steps = self.evaluator.test_predictions()
            if probs:  # (none where the test part is never scored)
                metrics["predictions"] = save_test_predictions(self.run_dir.path, self.p,
                                                               probs, steps)
            self.run_dir.write_json(METRICS, metrics)
            self.run_dir.file(CHECKPOINT).unlink(missing_ok=True)
        self.trackers.finish(self.step, self.config.to_dict(), metrics)
        return metrics
