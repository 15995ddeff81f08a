"""The run record: the layout of ``config.json``, ``metrics.json`` and ``failed.json``.

Written by the runner and the engine, read back by ``--resume``, ``sweep`` and ``compare``:
one home for what a run records about itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssl_bench.config.budget import exposure, method_label
from ssl_bench.core.errors import UserError
from ssl_bench.core.provenance import environment
from ssl_bench.plugins.registry import dataset_registry
from ssl_bench.plugins.sources import plugin_sources
from ssl_bench.runs.predictions import write_predictions
from ssl_bench.runs.run_dir import CONFIG, RunDir

if TYPE_CHECKING:
    from ssl_bench.training.divergence import TrainingDiverged
    from ssl_bench.training.prepare import PreparedRun


def config_record(prepared: PreparedRun, trainer_facts: dict[str, Any]) -> dict[str, Any]:
    """``config.json``: the resolved configuration, method contract, data set, schedule,
    loss weights and environment of a run about to start (``trainer_facts``: what only the
    built trainer knows, :meth:`~ssl_bench.training.trainer.Trainer.facts`)."""
    return {
        "config": prepared.config.to_dict(),
        "method": {"name": prepared.config.method,
                   "needs_teacher": prepared.method.needs_teacher,
                   "uses_unlabeled": prepared.method.uses_unlabeled,
                   "views": {name: {"augmentation": view.augmentation, "rows": view.rows}
                             for name, view in prepared.method.view_specs().items()},
                   "defaults": dict(prepared.method.defaults),
                   "own_parameters": sum(p.numel() for p in prepared.method.parameters()),
                   "state": sorted(prepared.method.state_dict())},
        "dataset": {"name": prepared.dataset.name,
                    "kind": prepared.dataset.kind,
                    "classes": prepared.dataset.class_names,
                    "fingerprint": prepared.dataset.fingerprint(),
                    "split_fingerprint": prepared.split.fingerprint,
                    "split_digest": prepared.split.digest,
                    "size": len(prepared.dataset),
                    "skipped_images": len(prepared.bad_images),
                    "skipped_rows": len(prepared.bad_rows),
                    "info": prepared.dataset.info,
                    "images": prepared.cache},
        "schedule": {"total_steps": prepared.total_steps,
                     "steps_per_epoch": prepared.steps_per_epoch,
                     "eval_every": prepared.eval_every,
                     "num_labeled_per_batch": trainer_facts["num_labeled_per_batch"],
                     "processes": trainer_facts["processes"],
                     "fused_optimizer": trainer_facts["fused_optimizer"],
                     "in_chans": prepared.in_chans,
                     "weight_source": trainer_facts["weight_source"],
                     "normalisation": {**prepared.normalisation,
                                       "mean": prepared.mean.tolist(),
                                       "std": prepared.std.tolist()}},
        "loss": {name: None if weights is None else [round(float(w), 6) for w in weights]
                 for name, weights in (
                     ("class_weights", prepared.task.class_weights),
                     ("consistency_class_weights", prepared.task.consistency_weights))},
        "environment": environment(str(prepared.device)),
        "plugins": plugin_sources({"method": type(prepared.method),
                                   "data set": dataset_registry.get(prepared.config.dataset)}),
    }


def metrics_record(prepared: PreparedRun, steps: int, seconds: float,
                   summary: dict[str, Any], labeled_per_step: int,
                   stopped: str) -> dict[str, Any]:
    """``metrics.json``: a finished run's identity, its labeled exposure and budget, and
    its summary (``Evaluator``). ``stopped``: ``budget`` (ran to its end) or ``patience``
    (stopped early)."""
    config = prepared.config
    return {
        "finished": True,
        "method": config.method,
        "label": method_label(config.method, prepared.method.uses_unlabeled,
                              config.supervised_batch),
        "dataset": prepared.dataset.name,
        "labeled": prepared.config.labeled,
        "num_labeled": len(prepared.parts["labeled"]),
        "seed": prepared.config.seed,
        "steps": steps,
        "train_seconds": round(seconds, 2),
        "exposure": exposure(labeled_per_step, steps, len(prepared.parts["labeled"])),
        "budget": {"max_steps": prepared.total_steps, "steps": steps, "stopped": stopped,
                   "patience": config.patience, "eval_every": prepared.eval_every},
        **summary,
    }


def save_test_predictions(folder: Path, prepared: PreparedRun, probs: dict[str, Any],
                          steps: dict[str, int]) -> dict[str, Any]:
    """Write ``predictions.csv.gz`` (:mod:`ssl_bench.runs.predictions`): each model's test
    probabilities at its best step with the test images' ids; return its record."""
    import torch

    rows = prepared.parts["test"]
    ids = [prepared.dataset.ids[row] for row in rows]
    targets = prepared.labels[torch.from_numpy(rows)].numpy()
    return write_predictions(folder, ids, prepared.dataset.class_names, targets, probs, steps)


def failure_record(prepared: PreparedRun, exc: TrainingDiverged) -> dict[str, Any]:
    """``failed.json``: why and where a run diverged."""
    return {
        "failed": True, "reason": "diverged", "cause": exc.cause, "step": exc.step,
        "error": str(exc), "method": prepared.config.method,
        "dataset": prepared.dataset.name, "labeled": prepared.config.labeled,
        "seed": prepared.config.seed,
    }


def stored_config(run_dir: RunDir, way_out: str) -> dict[str, Any]:
    """The ``config`` table of a run's ``config.json``; a damaged one is a one-line error
    naming the file and ``way_out``."""
    record = run_dir.read_json(CONFIG)
    stored = record.get("config") if isinstance(record, dict) else None
    if not isinstance(stored, dict):
        raise UserError(f"cannot resume: {run_dir.file(CONFIG)} has no 'config' table "
                        f"(damaged); {way_out}")
    return dict(stored)
