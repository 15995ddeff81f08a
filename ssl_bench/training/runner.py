"""One run, recorded: prepare, train with a progress display, write the run directory.

``config.json`` (the resolved configuration, data set, schedule, weights, class weights
and environment) and ``split.json`` are written when training starts, ``metrics.json``
last; a run that never reached its first checkpoint leaves nothing behind, and a resumed
run must have the configuration it was started with.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ssl_bench.config.run_config import MACHINE_SETTINGS, RunConfig, with_field_defaults
from ssl_bench.core import distributed
from ssl_bench.core.errors import UserError
from ssl_bench.core.interrupts import stop_requests
from ssl_bench.core.progress import TrainingProgress
from ssl_bench.core.rank_faults import PeerLost, peer_lost
from ssl_bench.core.threads import default_threads, set_threads
from ssl_bench.data.splits import Split, load_split
from ssl_bench.plugins.sources import copy_plugin_sources
from ssl_bench.runs.locks import FolderLock
from ssl_bench.runs.run_dir import (
    CHECKPOINT,
    CONFIG,
    FAILED,
    METRICS,
    SKIPPED,
    SKIPPED_ROWS,
    SPLIT,
    RunDir,
)
from ssl_bench.tracking import RunInfo, check_available, check_stores, open_trackers
from ssl_bench.training.divergence import TrainingDiverged
from ssl_bench.training.prepare import PreparedRun, prepare
from ssl_bench.training.records import config_record, failure_record, stored_config
from ssl_bench.training.trainer import Trainer


def verify_records(run_dir: RunDir, prepared: PreparedRun) -> None:
    """Refuse to resume unless ``config.json`` and ``split.json`` are what this run uses.

    Both are read and validated (a garbled or hand-edited record is an error naming the
    file); the stored configuration must equal the current one except machine settings,
    and the stored split must hold exactly the ids the configuration gives.
    """
    way_out = "pass --overwrite to start the run again"
    stored = stored_config(run_dir, way_out)
    current = prepared.config.to_dict()
    stored = with_field_defaults(stored)
    differs = sorted(k for k in current
                     if k not in MACHINE_SETTINGS and stored.get(k) != current[k])
    if differs:
        detail = "; ".join(f"{k}: {stored.get(k)!r} -> {current[k]!r}" for k in differs)
        raise UserError(f"cannot resume {run_dir.path}: the configuration differs ({detail})")
    try:
        split = load_split(run_dir.file(SPLIT))
    except UserError as exc:
        raise UserError(f"cannot resume: {exc}; {way_out}") from None
    if split.digest != prepared.split.digest or split.fingerprint != prepared.split.fingerprint:
        def sizes(of: Split) -> str:
            return ", ".join(f"{k} {v}" for k, v in of.sizes().items())

        raise UserError(
            f"cannot resume: {run_dir.file(SPLIT)} ({sizes(split)}) is not the split this "
            f"run's configuration gives ({sizes(prepared.split)}); it was changed after the "
            f"run started; {way_out}")


def run(config: RunConfig, output: str | Path, *, overwrite: bool = False, resume: bool = False,
        quiet: bool = False, split: Split | None = None, stop_after: int | None = None,
        progress: TrainingProgress | None = None,
        keep_best: bool = True, auto: bool = False,
        on_evaluation: Callable[[int, dict[str, Any]], None] | None = None,
        ) -> dict[str, Any] | None:
    """Prepare, train and record one run in ``output``; return its metrics.

    The run folder is locked (:class:`~ssl_bench.runs.locks.FolderLock`) from before it is
    checked until the run ends, so another process can neither train into it nor pass the
    same checks at the same moment. ``progress`` replaces the default progress display
    (the sweep runner reports steps through it); ``keep_best=False`` writes no
    ``best.pt`` (reference results keep none). ``auto`` (sweeps) decides under the lock:
    a finished run's metrics are returned as they are, an interrupted one is resumed and
    a partial one without a checkpoint is started again. ``on_evaluation`` is called
    after every evaluation with (step, history row) (``tune`` prunes trials with it).
    """
    set_threads(config.threads or default_threads())
    check_available(config.log)  # a missing tracker package: before anything is written
    world = distributed.current()
    if world.distributed and not world.is_main:
        return _follow(config, output, split, stop_after, keep_best)
    check_stores(config.log, config.experiment)  # an unusable tracking store: one line, now
    prepared = prepare(config, split, quiet=quiet)
    distributed.barrier()  # the other ranks prepare once caches exist (see _follow)
    run_dir = RunDir(output)
    created = _first_missing(run_dir.path)
    lock = FolderLock(run_dir.path)
    try:
        lock.acquire()
        if auto:
            if run_dir.finished:  # finished by another process since the caller looked
                distributed.broadcast_object({"finished": True})
                return run_dir.read_json(METRICS)
            resume, overwrite = run_dir.resumable, not run_dir.resumable
        try:
            resumed = run_dir.prepare(overwrite=overwrite, resume=resume)
            if resumed:
                verify_records(run_dir, prepared)
        except UserError as exc:
            distributed.broadcast_object({"error": str(exc)})  # the other ranks stop with it
            raise
        distributed.broadcast_object({"resumed": resumed})
        if progress is None:
            title = f"{prepared.config.method}/{prepared.dataset.name}/seed={prepared.config.seed}"
            progress = TrainingProgress(prepared.total_steps, title, quiet=quiet)
        progress.total = prepared.total_steps
        if run_dir.note:
            progress.message(run_dir.note)
        progress.message(start_line(prepared, run_dir.path, resumed))
        with progress:
            trainer = Trainer(prepared, run_dir, progress)
            trainer.keep_best = keep_best
            trainer.on_evaluation = on_evaluation
            if resumed:
                trainer.resume_from(run_dir.file(CHECKPOINT))
                progress.message(f"continuing from the checkpoint of step {trainer.step}")
            else:
                _write_start_records(run_dir, prepared, trainer, progress)
            trainer.trackers = trackers = open_trackers(config.log, RunInfo(
                prepared.config.to_dict(), run_dir.path, trainer.step, resumed))
            status = "FAILED"
            try:
                with stop_requests() as request:  # Ctrl-C/SIGTERM: checkpoint, then stop
                    trainer.stop_request = request
                    metrics = fit(trainer, stop_after, run_dir.path)
                status = "KILLED" if metrics is None else "FINISHED"  # (None: stop_after)
                return metrics
            except TrainingDiverged as exc:
                _record_failure(run_dir, trainer, exc)
                raise
            except KeyboardInterrupt:
                status = "KILLED"  # stopped with a checkpoint: --resume continues it
                raise
            finally:
                trackers.close(status)
    except BaseException:
        # A run that never reached its first checkpoint leaves nothing behind.
        if (created is not None and lock.held and run_dir.path.exists()
                and not run_dir.resumable and not run_dir.finished and not run_dir.failed):
            shutil.rmtree(run_dir.path, ignore_errors=True)
            _remove_empty_parents(run_dir.path, created)
        raise
    finally:
        lock.release()


def start_line(prepared: PreparedRun, output: Path, resumed: bool) -> str:
    """What a run is about to do, in one line (the first line of a cluster job's log)."""
    import torch

    config, sizes = prepared.config, prepared.split.sizes()
    parts = ", ".join(f"{part} {sizes[part]:,}" for part in ("labeled", "unlabeled", "val",
                                                              "test"))
    if sizes["unlabeled_only"]:
        parts = parts.replace(f"unlabeled {sizes['unlabeled']:,}", f"unlabeled "
                              f"{sizes['unlabeled']:,} ({sizes['unlabeled_only']:,} of them "
                              "nobody labeled)")
    threads = torch.get_num_threads()
    return (f"{'resuming' if resumed else 'starting'} {config.method} on "
            f"{prepared.dataset.name} ({parts}); {config.backbone} at {config.image_size} px, "
            f"{prepared.total_steps:,} steps, evaluation every {prepared.eval_every:,}; "
            f"device {prepared.device}, {threads} thread{'s' * (threads != 1)}; "
            f"output {output}")


def _follow(config: RunConfig, output: str | Path, split: Split | None,
            stop_after: int | None, keep_best: bool) -> dict[str, Any] | None:
    """A rank other than the first in a torchrun run: it trains its shard in step with
    the first rank, which alone locks, checks and writes the run folder."""
    distributed.barrier()  # the first rank has prepared (and built any cache)
    prepared = prepare(config, split, quiet=True)
    decision = distributed.broadcast_object(None)
    if "error" in decision:
        raise UserError(decision["error"])
    if decision.get("finished"):
        return RunDir(output).read_json(METRICS)
    progress = TrainingProgress(prepared.total_steps, "", quiet=True)
    trainer = Trainer(prepared, None, progress)
    trainer.keep_best = keep_best
    if decision["resumed"]:
        trainer.resume_from(RunDir(output).file(CHECKPOINT))
    return fit(trainer, stop_after, Path(output))


def fit(trainer: Trainer, stop_after: int | None, output: Path) -> dict[str, Any] | None:
    """``trainer.fit``; under torchrun a collective failing because another process of
    the run ended is this rank's one line (:class:`~ssl_bench.core.rank_faults.PeerLost`)."""
    try:
        return trainer.fit(stop_after=stop_after)
    except RuntimeError as exc:
        cause = peer_lost(exc) if trainer.world.distributed else None
        if cause is None:
            raise
        saved = int(trainer.history[-1]["step"]) if trainer.history else None
        raise PeerLost(trainer.world.rank, trainer.world.size, trainer.step, cause, output,
                       saved) from None


def _first_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` that does not exist yet (None: it exists)."""
    path = path.absolute()
    if path.exists():
        return None
    while not path.parent.exists() and path.parent != path:
        path = path.parent
    return path


def _remove_empty_parents(path: Path, top: Path) -> None:
    """Remove the now-empty folders this run created above ``path``, up to ``top``."""
    path, top = path.absolute(), top.absolute()
    while path != top and top in path.parents:
        path = path.parent
        try:
            path.rmdir()
        except OSError:
            return


def _write_start_records(run_dir: RunDir, prepared: PreparedRun, trainer: Trainer,
                         progress: TrainingProgress) -> None:
    """``config.json``, ``split.json`` and the lists of left-out images and rows."""
    record = config_record(prepared, trainer.facts())
    copy_plugin_sources(run_dir.path, record["plugins"])  # before config.json names them
    run_dir.write_json(CONFIG, record)
    run_dir.write_json(SPLIT, prepared.split.to_dict())
    if prepared.bad_images:
        run_dir.write_json(SKIPPED, {
            "reason": "--skip-bad-images: these images were left out of the split",
            "count": len(prepared.bad_images),
            "images": [vars(b) for b in prepared.bad_images],
        })
        progress.message(f"skipped {len(prepared.bad_images)} unreadable image(s); "
                         f"see {run_dir.file(SKIPPED)}")
    if prepared.bad_rows:
        run_dir.write_json(SKIPPED_ROWS, {
            "reason": "--skip-bad-rows: these CSV rows were left out of the data set",
            "count": len(prepared.bad_rows),
            "rows": prepared.bad_rows,
        })
        progress.message(f"skipped {len(prepared.bad_rows)} bad CSV row(s); "
                         f"see {run_dir.file(SKIPPED_ROWS)}")


def _record_failure(run_dir: RunDir, trainer: Trainer, exc: TrainingDiverged) -> None:
    """Mark a diverged run failed: ``failed.json`` and its curves, no resume state.

    Resuming would only diverge again (same settings, same state), so the checkpoint
    goes; ``best.pt`` (if any) stays for inspection but no ``metrics.json`` is written.
    """
    if trainer.history:
        run_dir.write_history(trainer.history)
    run_dir.write_json(FAILED, failure_record(trainer.p, exc))
    run_dir.file(CHECKPOINT).unlink(missing_ok=True)
