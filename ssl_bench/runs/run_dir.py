"""One self-describing directory per run, written atomically.

``config.json`` (resolved configuration, versions, commit), ``split.json`` (the exact
split), ``history.csv`` (curves), ``best.pt`` (best-validation weights), ``checkpoint.pt``
(resume state, removed once finished), ``predictions.csv.gz`` (test probabilities,
:mod:`ssl_bench.runs.predictions`) and ``metrics.json`` -- written last: a run is
finished exactly when ``metrics.json`` exists. A run that diverged writes ``failed.json``
(why, where, the likely cause) instead and can only be started again (``--overwrite``).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path
from typing import Any

from ssl_bench.core.atomic import (
    atomic_torch_save,
    atomic_write_json,
    atomic_write_text,
    remove_stale_temporaries,
)
from ssl_bench.core.errors import UserError
from ssl_bench.runs.integrity import with_digest
from ssl_bench.runs.locks import LOCK

CONFIG = "config.json"
SPLIT = "split.json"
HISTORY = "history.csv"
METRICS = "metrics.json"
CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
SKIPPED = "skipped_images.json"
SKIPPED_ROWS = "skipped_rows.json"
FAILED = "failed.json"


class RunDir:
    """Paths and atomic writers of one run directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        #: What :meth:`prepare` did that the user should hear about (one line), if anything.
        self.note: str | None = None

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def finished(self) -> bool:
        return self.file(METRICS).is_file()

    @property
    def failed(self) -> bool:
        return self.file(FAILED).is_file()

    @property
    def resumable(self) -> bool:
        return self.file(CHECKPOINT).is_file()

    def prepare(self, *, overwrite: bool, resume: bool) -> bool:
        """Check the directory may be used; return True if it is resumed.

        The caller holds the folder's lock (:class:`~ssl_bench.runs.locks.FolderLock`), so the
        check and what follows are atomic with respect to other ssl-bench processes. A
        finished run is kept unless ``overwrite``; an unfinished one needs ``resume``
        (continue it) or ``overwrite`` (start again). Nothing is deleted before this
        check passes.
        """
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"output {self.path} exists and is not a directory")
        remove_stale_temporaries(self.path)  # left by a killed process (kill -9)
        occupied = self.path.is_dir() and any(p.name != LOCK for p in self.path.iterdir())
        if not occupied:
            return False
        if overwrite:
            self.clear()
            return False
        if self.finished:
            raise UserError(
                f"{self.path} holds a finished run ({METRICS} exists); pass --overwrite to "
                "replace it or choose another --output"
            )
        if self.failed:
            raise UserError(
                f"{self.path} holds a run that failed ({self.failure_text()}); pass "
                "--overwrite to start it again (with other settings) or choose another --output"
            )
        if self.stopped_before_first_checkpoint():
            # Killed before its first checkpoint (SIGTERM while split.json was written,
            # kill -9): nothing to continue from, so it starts again -- with --resume too,
            # so a requeued job can always pass --resume.
            self.clear()
            self.note = (f"{self.path} holds a run stopped before its first checkpoint; "
                         "starting it from step 0")
            return False
        if resume:
            if not self.resumable:
                raise UserError(f"cannot resume: {self.path} has no {CHECKPOINT}")
            return True
        raise UserError(
            f"{self.path} holds an unfinished run; pass --resume to continue it or "
            "--overwrite to start again"
        )

    def stopped_before_first_checkpoint(self) -> bool:
        """Whether the folder holds an ssl-bench run's start records (``config.json``) but
        no checkpoint, result or failure: a run killed before its first checkpoint."""
        if self.resumable or self.finished or self.failed:
            return False
        try:
            record = json.loads(self.file(CONFIG).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(record, dict) and {"config", "method", "schedule"} <= set(record)

    def clear(self) -> None:
        """Delete everything in the folder but its lock file (held by this process)."""
        for entry in self.path.iterdir():
            if entry.name == LOCK:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    def failure_text(self) -> str:
        """The recorded reason of a failed run (``failed.json``), one line."""
        try:
            record = json.loads(self.file(FAILED).read_text(encoding="utf-8"))
            return str(record["error"])
        except (OSError, ValueError, KeyError, TypeError):
            return f"see {self.file(FAILED)}"

    def write_json(self, name: str, obj: Any) -> Path:
        return atomic_write_json(self.file(name), obj)

    def read_json(self, name: str) -> Any:
        path = self.file(name)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"cannot read {path}: {exc}") from None

    def write_history(self, rows: list[dict[str, Any]]) -> Path:
        columns: list[str] = []
        for row in rows:
            columns.extend(key for key in row if key not in columns)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
        return atomic_write_text(self.file(HISTORY), buffer.getvalue())

    def save(self, name: str, state: dict[str, Any]) -> Path:
        """A checkpoint dict, with its integrity record (:mod:`ssl_bench.runs.integrity`)."""
        return atomic_torch_save(self.file(name), with_digest(state))
