"""The training engine: everything a run does between preparation and its records.

:class:`Trainer` runs the two-stream loop of a :class:`~ssl_bench.prepare.PreparedRun`
with the EMA teacher, lambda(t), periodic evaluation of student and teacher on
validation and test, best-validation selection and resumable checkpoints. A method only
supplies its losses (:meth:`Method.train_step`).
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import random
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .backbones import Backbone, create_backbone
from .config import RunConfig
from .divergence import DivergenceMonitor
from .integrity import load_verified
from .method import Batch, StepContext, StepOutput
from .method_logs import StepLogs, method_info
from .metrics import MissingClassWarning, compute_metrics, metric_names
from .perturb import ImagePipeline, Perturbation
from .prepare import PreparedRun
from .progress import TrainingProgress
from .run_dir import BEST, CHECKPOINT, METRICS, RunDir
from .schedules import ConsistencySchedule, EmaUpdater, ema_decay_at, lr_factor
from .views import ViewMaker

#: How often (in steps) loss values are read back for the progress bar.
REFRESH_EVERY = 10


@contextlib.contextmanager
def _untimed(phase: str) -> Iterator[None]:
    yield


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_models(prepared: PreparedRun) -> tuple[Backbone, nn.Module, nn.Module | None]:
    """The backbone, the student (the method's model around it, trainable) and, if the
    method needs one, its EMA teacher (a deep copy of the student, no gradients)."""
    config = prepared.config
    backbone = create_backbone(
        config.backbone, num_classes=prepared.task.num_classes, in_chans=prepared.in_chans,
        pretrained=config.pretrained, drop_rate=config.drop_rate, weights=config.weights,
        img_size=config.image_size,
    )
    student = prepared.method.build_model(backbone).to(prepared.device)
    if prepared.device.type == "cuda" and config.channels_last:
        student = student.to(memory_format=torch.channels_last)
    teacher = None
    if prepared.method.needs_teacher:
        teacher = copy.deepcopy(student)
        for parameter in teacher.parameters():
            parameter.requires_grad_(False)
        teacher.train()  # as the official code: dropout and batch statistics, no grads
    return backbone, student, teacher


def build_optimizer(config: RunConfig, *modules: nn.Module) -> torch.optim.Optimizer:
    """The configured optimiser, in its fused (one-kernel) form where torch has one.

    Fused Adam/AdamW/SGD do the same update as the per-parameter loop up to float
    rounding, and on 2 CPU cores take 2.5 ms instead of 17 ms for resnet10t's 5M
    parameters (benchmarks/speed.py); older torch versions fall back to the loop. Every
    trainable parameter of ``modules`` (the student, and the method's own modules) is
    optimised, each once.
    """
    params = list({id(p): p for module in modules for p in module.parameters()
                   if p.requires_grad}.values())
    if config.optimizer == "adam":
        cls, kwargs = torch.optim.Adam, dict(lr=config.lr, weight_decay=config.weight_decay)
    elif config.optimizer == "adamw":
        cls, kwargs = torch.optim.AdamW, dict(lr=config.lr, weight_decay=config.weight_decay)
    else:
        cls, kwargs = torch.optim.SGD, dict(lr=config.lr, momentum=config.momentum,
                                            nesterov=True, weight_decay=config.weight_decay)
    try:
        return cls(params, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this torch/device
        return cls(params, **kwargs)


def build_scheduler(config: RunConfig, optimizer: torch.optim.Optimizer, total_steps: int,
                    steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler:
    """The learning-rate schedule, stepped once per training step (see ``lr_factor``)."""
    def factor(step: int) -> float:
        return lr_factor(config.lr_schedule, step, total_steps, steps_per_epoch,
                         config.lr_decay)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class Trainer:
    """Runs one prepared configuration; owns models, optimiser, sampler and records."""

    def __init__(self, prepared: PreparedRun, run_dir: RunDir | None = None,
                 progress: TrainingProgress | None = None) -> None:
        from .batches import TwoStreamSampler

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
        self.backbone, self.student, self.teacher = build_models(prepared)
        self.method.to(self.device)
        self.method.setup(method_info(prepared))
        self.optimizer = build_optimizer(self.config, self.student, self.method)
        self.ema = (EmaUpdater(self.teacher, self.student, self.config.teacher_buffers)
                    if self.teacher is not None else None)
        self.scheduler = build_scheduler(self.config, self.optimizer, prepared.total_steps,
                                         prepared.steps_per_epoch)
        self.amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler(
            "cuda", enabled=self.amp_dtype == torch.float16)
        labeled, unlabeled = prepared.parts["labeled"], prepared.parts["unlabeled"]
        # Labeled-only methods get either a fully labeled batch or, as the official
        # baseline (--ema_consistency 0), the SSL methods' two-stream batch.
        two_stream = self.method.uses_unlabeled or self.config.supervised_batch == "two-stream"
        if two_stream and len(unlabeled) > 0:
            per_batch = (self.config.labeled_batch_size,
                         self.config.batch_size - self.config.labeled_batch_size)
        else:
            per_batch = (self.config.batch_size, 0)
        self.num_labeled = per_batch[0]
        self.sampler = TwoStreamSampler(labeled, unlabeled, *per_batch, seed=self.config.seed)
        hflip = self.config.hflip
        if hflip is None:
            hflip = bool(prepared.dataset.recommended.get("hflip", True))
        self.pipeline = ImagePipeline(
            prepared.mean, prepared.std,
            Perturbation(self.config.rotation, self.config.translate, hflip,
                         self.config.noise_std),
            self.device,
            channels_last=self.device.type == "cuda" and self.config.channels_last,
        )
        self.view_maker = ViewMaker(self.method.view_specs(), self.pipeline,
                                    self.config.method, per_batch[1] > 0)
        # dataset row -> position in its pool (the indices a Batch carries)
        self.pool_position = np.full(len(prepared.labels), -1, dtype=np.int64)
        for pool in (labeled, unlabeled):
            self.pool_position[pool] = np.arange(len(pool))
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(self.config.seed + 7919)
        self.images = prepared.images
        self.pin = self.device.type == "cuda"
        self.labels = prepared.labels.to(self.device)
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, dict[str, Any]] = {}
        self.best_states: dict[str, dict[str, torch.Tensor]] = {}
        self.elapsed = 0.0
        self.lambda_schedule = ConsistencySchedule(
            self.config.consistency_weight, self.config.rampup * prepared.total_steps,
            prepared.steps_per_epoch, self.config.rampup_per_epoch,
            math.ceil(self.config.unsupervised_start * prepared.steps_per_epoch))
        self._warned: set[str] = set()
        self.monitor = DivergenceMonitor(self.config.lr, self.config.consistency_weight)
        self.logs = StepLogs(self.task.kind)
        self.keep_best = True
        #: Optional phase timer (``ssl_bench.benchmarking.PhaseTimer``) for speed reports.
        self.timer: Any = None
        # What the method calls: the models themselves, or their torch.compile'd wrappers
        # (which share parameters, so EMA and checkpoints keep using the plain modules).
        self.student_call: nn.Module = self.student
        self.teacher_call: nn.Module | None = self.teacher
        if self.config.compile:
            self.student_call = torch.compile(self.student)
            if self.teacher is not None:
                self.teacher_call = torch.compile(self.teacher)

    # -- helpers ------------------------------------------------------------------
    def _amp_dtype(self) -> torch.dtype | None:
        if not self.config.amp or self.device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def models(self) -> dict[str, nn.Module]:
        return {"student": self.student, **({"teacher": self.teacher} if self.teacher else {})}

    def consistency_weight(self, step: int) -> float:
        return self.lambda_schedule(step)

    def next_batch(self) -> Batch:
        """Sample rows, fetch their pixels (pinned, on the way to the device), make views."""
        timer = self.timer or _untimed
        with timer("data"):
            rows = self.sampler.next()
            images = self.images.take(rows)
            if self.pin:
                images = images.pin_memory()
            targets = self.labels[torch.from_numpy(rows[: self.num_labeled]).to(self.device)]
            positions = torch.from_numpy(self.pool_position[rows]).to(self.device)
        with timer("perturb"):
            views = self.view_maker(images, self.num_labeled, self.generator)
        self._unlabeled_rows = rows[self.num_labeled:]
        return Batch(views, targets, self.num_labeled, positions[: self.num_labeled],
                     positions[self.num_labeled:])

    def train_step(self) -> dict[str, torch.Tensor]:
        """One optimisation step of the student, then the EMA update of the teacher.

        Returns the loss terms (detached); the method's logs accumulate in ``self.logs``.
        """
        timer = self.timer or _untimed
        batch = self.next_batch()
        ctx = StepContext(self.student_call, self.teacher_call, self.task,
                          self.consistency_weight(self.step), self.step)
        with timer("method"), self._autocast():
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
        if self.teacher is not None:
            with timer("ema"):
                self.ema(ema_decay_at(self.step, self.config.ema_decay))
        self.logs.add(output, self.labels, self._unlabeled_rows)
        self.step += 1
        return {name: value.detach() for name, value in losses.items()}

    @torch.no_grad()
    def predict(self, model: nn.Module, rows: np.ndarray) -> np.ndarray:
        """Probabilities of ``model`` (eval mode, no perturbation) on image ``rows``."""
        was_training = model.training
        model.eval()
        out = []
        size = self.config.eval_batch_size
        for start in range(0, len(rows), size):
            chunk = self.images.take(rows[start : start + size])
            with self._autocast():
                _, logits = model(self.pipeline.clean(chunk))
            out.append(self.task.probabilities(logits).cpu())
        model.train(was_training)
        if not out:
            return np.zeros((0, self.task.num_classes), dtype=np.float32)
        return torch.cat(out).numpy()

    def evaluate(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Metrics of every model on validation and test: ``[model][part] -> metrics``."""
        results: dict[str, dict[str, dict[str, Any]]] = {}
        for name, model in self.models().items():
            results[name] = {}
            for part in ("val", "test"):
                rows = self.p.parts[part]
                if len(rows) == 0:
                    results[name][part] = {}
                    continue
                probs = self.predict(model, rows)
                self.monitor.check_predictions(self.step, name, part, probs, self.task.kind)
                targets = self.p.labels[torch.from_numpy(rows)].numpy()
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", MissingClassWarning)
                    results[name][part] = compute_metrics(
                        probs, targets, self.task.kind, self.p.dataset.class_names)
                for warning in caught:  # the same part lacks the same class at every eval
                    text = f"{part} set: {warning.message}"
                    if text not in self._warned:
                        self._warned.add(text)
                        if self.progress:
                            self.progress.message(f"warning: {text}")
        return results

    def _select(self, results: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
        """Update best-validation records; return the models that improved."""
        improved = []
        metric = self.config.selection_metric
        for name, parts in results.items():
            value = parts["val"].get(metric)
            score = -math.inf if value is None else value
            if name not in self.best or score > self.best[name]["score"]:
                self.best[name] = {"score": score, "best_step": self.step,
                                   "val": parts["val"], "test": parts["test"]}
                self.best_states[name] = {k: v.detach().cpu().clone()
                                          for k, v in self.models()[name].state_dict().items()}
                improved.append(name)
        return improved

    def _history_row(self, sums: dict[str, float], count: int,
                     results: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
        row: dict[str, Any] = {
            "step": self.step,
            "epoch": round(self.step / self.p.steps_per_epoch, 4),
            "lr": self.scheduler.get_last_lr()[0],
            "consistency_weight": self.consistency_weight(self.step),
            "seconds": round(self.elapsed, 3),
        }
        for name, total in sums.items():
            row[f"loss_{name}"] = total / max(count, 1)
        row.update(self.logs.flush())
        for model, parts in results.items():
            for part, metrics in parts.items():
                for key in metric_names(self.task.kind):
                    row[f"{part}_{model}_{key}"] = metrics.get(key)
        return row

    # -- checkpoints --------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "student": self.student.state_dict(),
            "teacher": None if self.teacher is None else self.teacher.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "sampler": self.sampler.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "history": self.history,
            "best": self.best,
            "best_states": self.best_states,
            "elapsed": self.elapsed,
            "divergence": self.monitor.state_dict(),
            "method": self.method.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = state["step"]
        self.student.load_state_dict(state["student"])
        if self.teacher is not None:
            self.teacher.load_state_dict(state["teacher"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.sampler.load_state_dict(state["sampler"])
        # RNG states are CPU byte tensors, whatever map_location moved them to.
        self.generator.set_state(state["generator"].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
        self.history = state["history"]
        self.best = state["best"]
        self.best_states = state["best_states"]
        self.elapsed = state["elapsed"]
        self.monitor.load_state_dict(state.get("divergence"))
        if state.get("method") is not None:
            self.method.load_state_dict(state["method"])

    def resume_from(self, path: Path) -> None:
        """Continue from a checkpoint, refusing a damaged one (checksum, readable zip)."""
        state = load_verified(path, self.device, way_out=(
            "cannot resume; pass --overwrite (instead of --resume) to start the run again"))
        self.load_state_dict(state)

    # -- the loop -----------------------------------------------------------------
    def fit(self, stop_after: int | None = None) -> dict[str, Any] | None:
        """Train to the end (or until ``stop_after`` steps, for tests); return metrics."""
        total = self.p.total_steps
        sums: dict[str, float] = {}  # loss sums since the last evaluation
        pending: dict[str, torch.Tensor] = {}  # loss sums not yet read back from the device
        count = pending_count = 0
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
        while self.step < total:
            for name, value in self.train_step().items():
                pending[name] = pending.get(name, 0) + value
            count += 1
            pending_count += 1
            at_eval = self.step % self.p.eval_every == 0 or self.step == total
            if self.progress:
                self.progress.advance(self.step)
            # The first step's losses are the divergence baseline: read back at once.
            if self.step % REFRESH_EVERY == 0 or at_eval or self.step == 1:
                # Reading losses synchronises the device: only every few steps.
                means = {name: float(value) / pending_count for name, value in pending.items()}
                for name, value in pending.items():
                    sums[name] = sums.get(name, 0.0) + float(value)
                pending.clear()
                pending_count = 0
                self.monitor.check_losses(self.step, means)
                self.monitor.check_parameters(self.step, self.student,
                                              gradients=not self.scaler.is_enabled())
                if self.progress:
                    self.progress.step(self.step, means, last_val)
            if at_eval:
                self.elapsed = time.perf_counter() - started
                results = self.evaluate()
                improved = self._select(results)
                self.history.append(self._history_row(sums, count, results))
                sums, count = {}, 0
                last_val = results[self._lead()]["val"].get(self.config.selection_metric)
                self._record(improved, results)
            if stop_after is not None and self.step >= stop_after:
                return None
        return self._finish()

    def _lead(self) -> str:
        return "teacher" if self.teacher is not None else "student"

    def _record(self, improved: list[str], results: dict[str, Any]) -> None:
        metric = self.config.selection_metric
        parts = []
        for name, res in results.items():
            value = res["val"].get(metric)
            mark = "*" if name in improved else ""
            parts.append(f"{name} val_{metric}={'n/a' if value is None else f'{value:.4f}'}{mark}")
        if self.progress:
            self.progress.evaluation(self.step, "  ".join(parts))
        if self.run_dir is None:
            return
        self.run_dir.write_history(self.history)
        if improved and self.keep_best:
            self.run_dir.save(BEST, {
                "backbone": self.config.backbone,
                "steps": {k: v["best_step"] for k, v in self.best.items()},
                **self.best_states,
            })
        self.run_dir.save(CHECKPOINT, self.state_dict())

    def summary(self) -> dict[str, Any]:
        """Test metrics at each model's best-validation step, the overall pick, the report.

        ``best`` is whichever of student and teacher has the higher validation metric (a
        pick only teacher methods get); ``reported`` is the model ``report_model`` names
        (``best``, ``student``, or ``teacher`` -- the student for methods without one).
        """
        metric = self.config.selection_metric
        out: dict[str, Any] = {
            "selection": {"split": "val", "metric": metric,
                          "rule": "highest validation metric; earliest step on ties"},
        }
        for name, record in self.best.items():
            out[name] = {k: v for k, v in record.items() if k != "score"}
        pick = max(self.best, key=lambda n: (self.best[n]["score"], n == "teacher"))
        out["best"] = {"model": pick, **out[pick]}
        report = self.config.report_model
        reported = out["best"] if report == "best" else {
            "model": report if report in self.best else "student",
            **out[report if report in self.best else "student"]}
        out["reported"] = {"rule": report, **reported}
        return out

    def _finish(self) -> dict[str, Any]:
        summary = self.summary()
        metrics = {
            "finished": True,
            "method": self.config.method,
            "dataset": self.p.dataset.name,
            "labeled": self.config.labeled,
            "num_labeled": len(self.p.parts["labeled"]),
            "seed": self.config.seed,
            "steps": self.step,
            "train_seconds": round(self.elapsed, 2),
            **summary,
        }
        if self.run_dir is not None:
            self.run_dir.write_json(METRICS, metrics)
            self.run_dir.file(CHECKPOINT).unlink(missing_ok=True)
        return metrics
